package store_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"

	"github.com/stoa-rtc/stoa/internal/store"
	"github.com/stoa-rtc/stoa/internal/store/storetest"
)

// TestMigrateAuditOrganisation: on a database written before audit entries recorded their organisation, the
// migration assigns each entry to the organisation that still owns its target, leaves the rest to none, and
// gives each access-log entry the account of its email.
func TestMigrateAuditOrganisation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, err := store.OpenNoMigrate(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ms, err := store.Migrations()
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ms, func(m store.Migration) bool {
			return strings.HasSuffix(m.Name, "_audit_organisation_signed_head.sql")
		})
		if err := db.MigrateTo(ctx, ms[i].Version-1); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			"INSERT INTO organisations (id, name, created_us) VALUES (1, 'a', 0), (2, 'e', 0)",
			"INSERT INTO accounts (id, email, created_us) VALUES (10, 'a@example.com', 0)",
			"INSERT INTO projects (organisation_id, app_id, name, created_us) VALUES (1, 'app1', 'p', 0)",
			"INSERT INTO invitations (id, organisation_id, email, role, token_hash, invited_by, created_us, expires_us) VALUES (5, 2, 'x@example.com', 'viewer', 'h', 'e', 0, 0)",
			`INSERT INTO audit_log (seq, time_us, actor, action, target, before_json, after_json, prev_hash, hash) VALUES
				(1, 0, 'a@example.com', 'project.create', 'project:app1', 'null', 'null', '', ''),
				(2, 0, 'a@example.com', 'project.delete', 'project:gone', 'null', 'null', '', ''),
				(3, 0, 'e@example.com', 'invitation.create', 'invitation:5', 'null', 'null', '', ''),
				(4, 0, 'a@example.com', 'organisation.rename', 'organisation:1', 'null', 'null', '', ''),
				(5, 0, 'a@example.com', 'account.password.change', 'account:10', 'null', 'null', '', '')`,
			`INSERT INTO access_log (time_us, email, success) VALUES (1, 'a@example.com', 1), (2, 'nobody@example.com', 0)`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		got := column(t, db, "SELECT organisation_id FROM audit_log ORDER BY seq")
		if want := "1,null,2,1,null"; got != want {
			t.Errorf("audit organisations = %s, want %s", got, want)
		}
		if got := column(t, db, "SELECT account_id FROM access_log ORDER BY time_us"); got != "10,null" {
			t.Errorf("access log accounts = %s", got)
		}
		if got := column(t, db, "SELECT signature FROM audit_head"); got != "null" {
			t.Errorf("head signature = %s, want none before the console signs", got)
		}
	})
}

// column returns the values of a one-column query joined by commas, NULL as "null".
func column(t *testing.T, db *store.DB, q string) string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		s := "null"
		if v.Valid {
			s = v.String
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}
