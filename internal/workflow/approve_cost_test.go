package workflow_test

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// cpuTime is the CPU time the test process has used.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestRefusedApprovalHashesNothing: a customer calling Approve is refused
// before any bcrypt starts, so flooding it burns no CPU. Not parallel: it
// reads the CPU time of the whole process, which the parallel tests wait
// to start until it is done.
func TestRefusedApprovalHashesNothing(t *testing.T) {
	w := newWorldWith(t, workflow.Options{BcryptCost: 14}) // about a second of CPU a hash
	f := w.fixture(t)
	r := f.request(t, f.customerB)
	before := cpuTime(t)
	for range 3 {
		if _, err := f.svc.Approve(t.Context(), as(f.customerA), r.ID, workflow.ApproveInput{}); !errors.Is(err, portal.ErrForbidden) {
			t.Fatalf("a customer's approval: %v, want forbidden", err)
		}
	}
	time.Sleep(1500 * time.Millisecond) // a hash started in the background would be burning now
	if used := cpuTime(t) - before; used > 700*time.Millisecond {
		t.Errorf("three refused approvals used %s of CPU; a refusal should hash nothing", used)
	}
}
