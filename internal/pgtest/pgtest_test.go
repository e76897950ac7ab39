package pgtest

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestNew(t *testing.T) {
	t.Parallel()
	a, b := New(t), New(t)
	names := make([]string, 2)
	for i, pool := range []*pgxpool.Pool{a, b} {
		var clusters int
		if err := pool.QueryRow(t.Context(), "SELECT current_database(), (SELECT count(*) FROM clusters)").
			Scan(&names[i], &clusters); err != nil {
			t.Fatalf("a migrated database has no clusters table: %v", err)
		}
		if clusters != 0 {
			t.Errorf("a fresh database has %d clusters", clusters)
		}
	}
	if names[0] == names[1] {
		t.Errorf("two calls gave the same database %s", names[0])
	}

	// A change in one database is not seen in the other.
	if _, err := a.Exec(t.Context(), "INSERT INTO clusters (name, prometheus_url) VALUES ('a', 'https://a')"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.QueryRow(t.Context(), "SELECT count(*) FROM clusters").Scan(&n); err != nil || n != 0 {
		t.Errorf("the other database has %d clusters (%v)", n, err)
	}
}

func TestURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		url       func(testing.TB) string
		wantTable bool
	}{
		{"URL", URL, true},
		{"Empty", Empty, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn, err := pgx.Connect(t.Context(), tt.url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var hasTable bool
			if err := conn.QueryRow(t.Context(), "SELECT to_regclass('clusters') IS NOT NULL").Scan(&hasTable); err != nil {
				t.Fatal(err)
			}
			if hasTable != tt.wantTable {
				t.Errorf("clusters table exists: %v, want %v", hasTable, tt.wantTable)
			}
		})
	}
}

func TestUnset(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	tests := []struct {
		name string
		call func(testing.TB)
	}{
		{"New", func(tb testing.TB) { New(tb) }},
		{"URL", func(tb testing.TB) { URL(tb) }},
		{"Empty", func(tb testing.TB) { Empty(tb) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := &fatalTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				tt.call(tb)
			}()
			<-done
			if tb.msg != unset {
				t.Errorf("failed with %q, want %q", tb.msg, unset)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dsn     string
		want    endpoint
		wantTLS bool
		runtime map[string]string
	}{
		{
			name: "unix socket",
			dsn:  "postgres://postgres@/postgres?host=/tmp/pglocal1/socket&port=5432&sslmode=disable",
			want: endpoint{"/tmp/pglocal1/socket", 5432, "postgres", "", "postgres"},
		},
		{
			name: "socket folder in the host part",
			dsn:  "postgresql://me@%2Frun%2Fmy%20pg:6000/db",
			want: endpoint{"/run/my pg", 6000, "me", "", "db"},
		},
		{
			name:    "awkward password, kept parameters",
			dsn:     "postgres://app:p%40ss%3Aw%2Frd?%25%26x@db.example.com:5433/app%20db?sslmode=require&application_name=tests",
			want:    endpoint{"db.example.com", 5433, "app", "p@ss:w/rd?%&x", "app db"},
			wantTLS: true,
			runtime: map[string]string{"application_name": "tests"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conf, err := config(tt.dsn)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pgx.ParseConfig(conf.URL())
			if err != nil {
				t.Fatalf("pgtestdb URL %s: %v", conf.URL(), err)
			}
			if e := endpointOf(got); e != tt.want {
				t.Errorf("pgtestdb URL %s connects to %+v, want %+v", conf.URL(), e, tt.want)
			}
			if (got.TLSConfig != nil) != tt.wantTLS {
				t.Errorf("pgtestdb URL %s: TLS %v, want %v", conf.URL(), got.TLSConfig != nil, tt.wantTLS)
			}
			for k, v := range tt.runtime {
				if got.RuntimeParams[k] != v {
					t.Errorf("pgtestdb URL %s: %s = %q, want %q", conf.URL(), k, got.RuntimeParams[k], v)
				}
			}

			// pgtestdb swaps in its own role and database for the template
			// and each test's database.
			conf.User, conf.Password, conf.Database = "pgtdbuser", "pgtdbpass", "testdb_tpl_1"
			got, err = pgx.ParseConfig(conf.URL())
			if err != nil {
				t.Fatalf("pgtestdb URL %s: %v", conf.URL(), err)
			}
			want := endpoint{tt.want.Host, tt.want.Port, "pgtdbuser", "pgtdbpass", "testdb_tpl_1"}
			if e := endpointOf(got); e != want {
				t.Errorf("pgtestdb URL %s connects to %+v, want %+v", conf.URL(), e, want)
			}
		})
	}

	t.Run("keyword form", func(t *testing.T) {
		t.Parallel()
		if _, err := config("host=/tmp dbname=postgres"); err == nil {
			t.Error("config accepted a DSN that is not a URL")
		}
	})
}

// endpoint is where and as whom a connection goes.
type endpoint struct {
	Host               string
	Port               uint16
	User, Password, DB string
}

func endpointOf(c *pgx.ConnConfig) endpoint {
	return endpoint{c.Host, c.Port, c.User, c.Password, c.Database}
}

// fatalTB records the message of a fatal failure instead of failing the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (*fatalTB) Helper() {}

func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
