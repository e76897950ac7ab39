package workflow_test

import (
	"errors"
	"testing"

	"github.com/2i2c-org/credential-portal/internal/portal"
)

// firstPage is the first page of a list, as large as a page can be: the
// tests' lists are smaller.
var firstPage = portal.PageQuery{Limit: portal.MaxPageSize}

// TestPagedListsRefuseLimitsOutOfRange: a limit the server did not check
// (another caller of the workflow) is refused with the range, not capped in
// silence.
func TestPagedListsRefuseLimitsOutOfRange(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	for _, limit := range []int{0, -1, portal.MaxPageSize + 1} {
		q := portal.PageQuery{Limit: limit}
		calls := map[string]error{}
		_, calls["Requests"] = f.svc.Requests(t.Context(), as(f.customerA), "", q)
		_, calls["Queue"] = f.svc.Queue(t.Context(), as(f.staff), q)
		_, calls["Credentials"] = f.svc.Credentials(t.Context(), as(f.customerA), q)
		_, calls["Revocations"] = f.svc.Revocations(t.Context(), as(f.staff), q)
		_, calls["ClustersPage"] = f.svc.ClustersPage(t.Context(), as(f.staff), q)
		_, calls["Tokens"] = f.svc.Tokens(t.Context(), as(f.customerA), f.customerA.ID, q)
		_, calls["Sessions"] = f.svc.Sessions(t.Context(), as(f.customerA), f.customerA.ID, q)
		_, calls["People"] = f.svc.People(t.Context(), as(f.staff), "", q)
		for name, err := range calls {
			var pe *portal.Error
			if !errors.As(err, &pe) || pe.Kind != portal.KindInvalid || pe.Field != "limit" {
				t.Errorf("%s with limit %d: %v, want the limit refused", name, limit, err)
			}
		}
	}
}
