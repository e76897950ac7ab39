package loadseed

import (
	"os"
	"testing"
)

func TestRSSReadsThisProcess(t *testing.T) {
	now, err := RSS(os.Getpid(), "VmRSS")
	if err != nil || now < 1<<20 {
		t.Fatalf("VmRSS of this test: %d bytes, %v; want at least a MiB", now, err)
	}
	peak, err := RSS(os.Getpid(), "VmHWM")
	if err != nil || peak < now {
		t.Errorf("VmHWM %d bytes (%v), below VmRSS %d", peak, err, now)
	}
	if _, err := RSS(os.Getpid(), "NoSuchField"); err == nil {
		t.Error("a field /proc does not have was read")
	}
}
