package portal

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Page sizes of every paged list but the audit review (MaxAuditPage), pages
// and API alike.
const (
	DefaultPageSize = 50
	MaxPageSize     = 100
	// CountCap bounds the totals shown beside a list whose history grows
	// without end: counting stops past it ("more than 1,000"), so a count
	// costs no more with ten years of history than with one.
	CountCap = 1000
)

// PageCursor is where a page of a list ends: the sort key of its last row.
// The next page holds the rows strictly after it in the list's order, so
// rows that arrive meanwhile neither repeat nor skip a row. At is the time
// the list is ordered by, Name the name for a list ordered by name (clusters),
// and ID the row's ID, which breaks ties between equal times; a list ordered
// by ID alone ignores At.
type PageCursor struct {
	At   time.Time
	Name string
	ID   int64
}

// Encode is the cursor as the pages' links and the API's next_cursor give
// it: opaque to clients, base64url of "unix-microseconds:id", followed by
// ":name" for a list ordered by name. The audit review's cursors have the
// same form.
func (c PageCursor) Encode() string {
	s := fmt.Sprintf("%d:%d", c.At.UnixMicro(), c.ID)
	if c.Name != "" {
		s += ":" + c.Name
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// ParsePageCursor reads a cursor that Encode wrote, given as the query
// parameter param; "" is the first page, a nil cursor. Returns an Error of
// KindInvalid naming param for anything Encode cannot have written.
func ParsePageCursor(param, v string) (*PageCursor, error) {
	if v == "" {
		return nil, nil
	}
	bad := Invalid(param, "%s is not one this portal handed out; start again from the first page.", param)
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, bad
	}
	parts := strings.SplitN(string(raw), ":", 3)
	if len(parts) < 2 {
		return nil, bad
	}
	us, err1 := strconv.ParseInt(parts[0], 10, 64)
	id, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || id <= 0 {
		return nil, bad
	}
	// Every row's time is within these years; PostgreSQL's range is wider,
	// but a time outside it would not be a refusal but its error.
	if us < cursorTimeMin || us > cursorTimeMax {
		return nil, bad
	}
	c := &PageCursor{At: time.UnixMicro(us).UTC(), ID: id}
	if len(parts) == 3 {
		if !ValidClusterName(parts[2]) {
			return nil, bad
		}
		c.Name = parts[2]
	}
	return c, nil
}

// The bounds of a cursor's time: years 1 to 9999, in Unix microseconds.
var (
	cursorTimeMin = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	cursorTimeMax = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro()
)

// PageQuery is which page of a list to show: the rows after After (the
// first page when nil), at most Limit of them.
type PageQuery struct {
	After *PageCursor
	Limit int
}

// ParsePageQuery reads a page's cursor and limit from the query parameters
// cursorParam and "limit" as given ("" for each when absent): the default
// page size without a limit. Returns an Error of KindInvalid naming the
// parameter at fault, with the allowed range for a limit.
func ParsePageQuery(cursorParam, cursor, limit string) (PageQuery, error) {
	n, err := ParsePageLimit(limit)
	if err != nil {
		return PageQuery{Limit: DefaultPageSize}, err
	}
	after, err := ParsePageCursor(cursorParam, cursor)
	return PageQuery{After: after, Limit: n}, err
}

// ParsePageLimit reads the query parameter "limit" as given: DefaultPageSize
// when "". Returns an Error of KindInvalid with the allowed range for
// anything but a whole number from 1 to MaxPageSize.
func ParsePageLimit(v string) (int, error) {
	if v == "" {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || (PageQuery{Limit: n}).Valid() != nil {
		return 0, errLimit()
	}
	return n, nil
}

// Valid returns an Error of KindInvalid when q's limit is outside 1 to
// MaxPageSize.
func (q PageQuery) Valid() error {
	if q.Limit < 1 || q.Limit > MaxPageSize {
		return errLimit()
	}
	return nil
}

func errLimit() error {
	return Invalid("limit", "limit is a whole number from 1 to %d (%d when not given).", MaxPageSize, DefaultPageSize)
}

// Page is one page of a list: its rows and the cursor of the next page,
// "" on the last.
type Page[T any] struct {
	Items []T
	Next  string
}

// NewPage makes the page of rows, read with one row more than limit to
// learn whether another page follows; key is the cursor a row ends a page
// with.
func NewPage[T any](rows []T, limit int, key func(T) PageCursor) *Page[T] {
	if len(rows) <= limit {
		return &Page[T]{Items: rows}
	}
	rows = rows[:limit]
	return &Page[T]{Items: rows, Next: key(rows[limit-1]).Encode()}
}

// Count is a total counted at most up to CountCap+1: Over is set when there
// were more than CountCap.
type Count struct {
	N    int
	Over bool
}

// NewCount reads a count taken over at most CountCap+1 rows.
func NewCount(n int) Count {
	if n > CountCap {
		return Count{N: CountCap, Over: true}
	}
	return Count{N: n}
}

// String says the count as a page shows it: "12", or "more than 1,000".
func (c Count) String() string {
	if c.Over {
		return "more than " + thousands(c.N)
	}
	return thousands(c.N)
}

// thousands writes n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
