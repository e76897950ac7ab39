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
		_, calls["RequestSummaries"] = f.svc.RequestSummaries(t.Context(), as(f.customerA), q)
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

// TestRequestSummariesAreOnesOwn: the overview of requests lists the
// person's own, newest first, with what it shows of each, and nobody's for
// someone not signed in.
func TestRequestSummariesAreOnesOwn(t *testing.T) {
	t.Parallel()
	f := newWorld(t).fixture(t)
	mine := f.request(t, f.customerA)
	f.request(t, f.customerB)
	page, err := f.svc.RequestSummaries(t.Context(), as(f.customerA), firstPage)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 {
		t.Fatalf("%d requests in alice's overview, want her one", len(page.Items))
	}
	got := page.Items[0]
	if got.ID != mine.ID || got.UserID != f.customerA.ID || got.ClusterName != mine.ClusterName || got.Status != portal.StatusPending ||
		got.KeyFingerprint != mine.KeyFingerprint || got.KeyType != mine.KeyType || !got.CreatedAt.Equal(mine.CreatedAt) {
		t.Errorf("overview row %+v, want request %d as created (%+v)", got, mine.ID, mine)
	}
	if _, err := f.svc.RequestSummaries(t.Context(), as(nil), firstPage); !errors.Is(err, portal.ErrForbidden) {
		t.Errorf("someone not signed in: %v, want forbidden", err)
	}
}
