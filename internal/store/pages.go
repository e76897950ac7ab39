package store

import (
	"fmt"
	"strconv"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// keyset is the order of a paged list: a time column and the id that breaks
// its ties, newest first (desc) or oldest first. Every paged list's index
// holds its conditions' columns followed by these two, so that a page is one
// index range read up to its LIMIT, whatever the length of the history.
type keyset struct {
	at, id string
	desc   bool
}

// page finishes a page's statement: base (a SELECT … FROM … of the list)
// with conds, the rows strictly after the cursor (all rows when nil) in
// k's order, at most limit of them. args are the arguments conds refer to.
func (k keyset) page(base string, conds []string, args []any, after *portal.PageCursor, limit int) (string, []any) {
	dir, cmp := "", ">"
	if k.desc {
		dir, cmp = " DESC", "<"
	}
	if after != nil {
		args = append(args, after.At, after.ID)
		conds = append(conds, fmt.Sprintf("(%s, %s) %s ($%d, $%d)", k.at, k.id, cmp, len(args)-1, len(args)))
	}
	return base + whereClause(conds) + " ORDER BY " + k.at + dir + ", " + k.id + dir + limitClause(limit), args
}

// limitClause is a page's LIMIT, written into the statement rather than
// passed as an argument: a prepared statement's generic plan, which
// PostgreSQL reuses instead of planning each execution anew, then knows how
// few rows are wanted. With LIMIT $n it costs the plan for a tenth of the
// table, finds the custom plan cheaper, and plans every execution again
// (0.3 ms for a dashboard's list of requests). Pages take few sizes, so
// the statements stay few.
func limitClause(limit int) string {
	return " LIMIT " + strconv.Itoa(limit)
}

// pageLimit keeps a page's row count within what a workflow asks for: one
// more than portal.MaxPageSize, to learn whether a next page follows.
func pageLimit(limit int) int {
	return max(1, min(limit, portal.MaxPageSize+1))
}

// countCapped wraps the query of a list's rows into a count that stops
// after portal.CountCap+1 rows, so that its cost does not grow with history.
func countCapped(rowsQuery string) string {
	return `SELECT count(*) FROM (` + rowsQuery + ` LIMIT ` + strconv.Itoa(portal.CountCap+1) + `) counted`
}
