package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

const auditSynopsis = `Check the audit log's hash chain.

  portal audit verify [--since ID]

Walks the chain in id order, recomputes every event's hash and checks that
each event's prev_hash is the hash of the one before, and that no event is
dated before the one before it (the portal dates events by the database's
clock as it appends them, so an older one was back-dated). Prints the number of
events checked and the head (the last event and its hash); exits 0 when
every event checks out, 1 at the first one that does not, naming it and what
is wrong. The result is recorded, and staff see it on the audit page.

--since ID trusts event ID (one a previous run showed as good, for example
its head) and checks only the events after it.`

// auditVerifiedBy names this command in the recorded verifications.
const auditVerifiedBy = "portal audit verify"

// errChainBroken is the exit status 1 of a chain that does not check out.
var errChainBroken = errors.New("the audit chain is broken")

func cmdAudit(ctx context.Context, e env, args []string) error {
	var (
		databaseURL string
		since       int
	)
	settings := []setting{
		{env: "DATABASE_URL", flag: "database-url", secret: true, parse: required(databaseURLVar(&databaseURL)),
			usage: "PostgreSQL connection URL"},
		{flag: "since", def: "0", parse: intVar(&since, 0, math.MaxInt),
			usage: "trust the event with this ID and check only the events after it; 0 checks from the first"},
	}
	if len(args) == 0 || args[0] != "verify" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			printUsage(e.stdout, "audit verify", auditSynopsis, settings)
			return flag.ErrHelp
		}
		return fmt.Errorf("%w: audit wants `verify` (see `portal audit --help`)", errUsage)
	}
	rest, err := parseSettings("audit verify", auditSynopsis, settings, args[1:], e.getenv, e.stdout)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: audit verify takes no arguments, got %q", errUsage, rest)
	}
	pool, err := openPool(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	wf := workflow.New(store.New(pool), workflow.Options{})

	from := "from the first event"
	if since > 0 {
		from = fmt.Sprintf("after event %d", since)
	}
	fmt.Fprintf(e.stderr, "verifying the audit chain %s…\n", from)
	v, err := wf.VerifyAudit(ctx, workflow.Command(auditVerifiedBy), int64(since),
		func(n int64) { fmt.Fprintf(e.stderr, "  %d events checked\n", n) })
	if v == nil {
		return err
	}
	// The chain is the evidence and the walk is done: a failure to record it
	// is worth a warning, not a different exit status.
	if err != nil {
		fmt.Fprintf(e.stderr, "portal: warning: the result could not be recorded for the audit page: %s\n", err.Error())
	}

	took := v.Took.Round(time.Millisecond)
	if !v.OK() {
		fmt.Fprintf(e.stdout, "BROKEN at event %d (%s): %s\n", v.Broken.ID,
			v.Broken.At.UTC().Format(portal.AuditTimeFormat), v.Broken.Problem)
		fmt.Fprintf(e.stdout, "events checked: %d %s, in %s\n", v.Events, from, took)
		if v.HeadID > 0 {
			fmt.Fprintf(e.stdout, "last good event: %d, hash %s\n", v.HeadID, hex.EncodeToString(v.HeadHash))
		}
		return fmt.Errorf("%w at event %d", errChainBroken, v.Broken.ID)
	}
	fmt.Fprintf(e.stdout, "the audit chain checks out\n")
	fmt.Fprintf(e.stdout, "events checked: %d %s, in %s\n", v.Events, from, took)
	if v.HeadID == 0 {
		fmt.Fprintf(e.stdout, "head: none, the log is empty\n")
	} else {
		fmt.Fprintf(e.stdout, "head: event %d, hash %s\n", v.HeadID, hex.EncodeToString(v.HeadHash))
	}
	return nil
}
