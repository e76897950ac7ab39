package workflow

import (
	"context"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// reminderDays are how many days before expiry owners are reminded.
var reminderDays = []int{14, 3}

// reminderLock is the advisory lock under which one replica records due
// reminders ("remind" in ASCII).
const reminderLock = 0x72656d696e64

// RecordDueReminders records the expiry reminders that have come due, with
// an audit event each. Only one replica at a time does it: the others find
// the lock taken and return 0. Returns how many it recorded.
func (s *Service) RecordDueReminders(ctx context.Context) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx *store.Store, audit auditFunc) error {
		ok, err := tx.TryAdvisoryLock(ctx, reminderLock)
		if err != nil || !ok {
			return err
		}
		due, err := tx.RecordDueReminders(ctx, reminderDays, s.now())
		if err != nil {
			return err
		}
		for _, r := range due {
			err := audit(System.event(portal.ActionCredentialReminder, portal.SubjectCredential, r.CredentialID, &r.ClusterID,
				map[string]any{"days_before": r.DaysBefore, "expires_at": r.ExpiresAt.UTC().Format(time.RFC3339), "owner_id": r.UserID}))
			if err != nil {
				return err
			}
		}
		n = len(due)
		return nil
	})
	return n, err
}
