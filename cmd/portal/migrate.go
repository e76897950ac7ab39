package main

import (
	"context"
	"fmt"
	"log/slog"
	"text/tabwriter"

	"github.com/2i2c-org/credential-portal/internal/applog"
	"github.com/2i2c-org/credential-portal/internal/store"
)

const migrateSynopsis = `Manage the database schema.

  portal migrate up       apply every pending migration, each in a transaction
  portal migrate status   list migrations and whether each is applied`

func cmdMigrate(ctx context.Context, e env, args []string) error {
	var databaseURL string
	var level slog.Level
	settings := []setting{
		{env: "DATABASE_URL", flag: "database-url", secret: true, parse: required(databaseURLVar(&databaseURL)),
			usage: "PostgreSQL connection URL"},
		logLevelSetting(&level),
	}
	rest, err := parseSettings("migrate", migrateSynopsis, settings, args, e.getenv, e.stdout)
	if err != nil {
		return err
	}
	if len(rest) != 1 || (rest[0] != "up" && rest[0] != "status") {
		return fmt.Errorf("%w: migrate wants one of `up` or `status`", errUsage)
	}
	pool, err := openPool(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	if rest[0] == "up" {
		applied, err := store.Migrate(ctx, pool, applog.New(e.stderr, level))
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(e.stdout, "schema is up to date; nothing to apply")
			return nil
		}
		fmt.Fprintf(e.stdout, "applied %d migration(s): %v\n", len(applied), applied)
		return nil
	}

	st, err := store.Schema(ctx, pool)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tFILE")
	for _, m := range append(st.Applied, st.Pending...) {
		state := "pending"
		if m.Applied {
			state = "applied"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", m.Version, state, m.Source)
	}
	tw.Flush()
	if p := st.Problem(); p != "" {
		fmt.Fprintln(e.stdout, p)
	} else {
		fmt.Fprintf(e.stdout, "schema is at version %d, up to date\n", st.Current)
	}
	return nil
}
