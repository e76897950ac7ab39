package loadseed

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// RSS reads a process's resident memory in bytes from /proc: field "VmRSS"
// for now, or "VmHWM" for its peak (since start, or since the last reset
// through /proc/PID/clear_refs).
func RSS(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
