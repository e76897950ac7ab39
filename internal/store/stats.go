package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ClusterStats are one cluster's figures for the portal's metrics.
type ClusterStats struct {
	Name string
	// HasAgent says the cluster has a sync token, so an agent to miss.
	HasAgent bool
	Pending  int64
	// OldestPending is how long the oldest pending request has waited; 0
	// when none waits.
	OldestPending time.Duration
	// Credentials by state; ExpiringSoon counts the active ones that expire
	// within the window asked for.
	Active, ExpiringSoon, Revoked, Expired int64
}

// ClusterStats counts each cluster's pending requests and credentials by
// state, in one round trip, by name.
func (s *Store) ClusterStats(ctx context.Context, expiringWithin time.Duration) ([]ClusterStats, error) {
	rows, err := s.db.Query(ctx, `
		SELECT c.name, c.sync_token_hash IS NOT NULL,
		       coalesce(r.pending, 0), coalesce(r.oldest, 0),
		       coalesce(k.active, 0), coalesce(k.soon, 0), coalesce(k.revoked, 0), coalesce(k.expired, 0)
		FROM clusters c
		LEFT JOIN (SELECT cluster_id, count(*) AS pending,
		                  extract(epoch FROM now() - min(created_at))::float8 AS oldest
		           FROM requests WHERE status = 'pending' GROUP BY cluster_id) r ON r.cluster_id = c.id
		LEFT JOIN (SELECT cluster_id,
		                  count(*) FILTER (WHERE revoked_at IS NULL AND expires_at > now()) AS active,
		                  count(*) FILTER (WHERE revoked_at IS NULL AND expires_at > now()
		                                     AND expires_at <= now() + make_interval(secs => $1)) AS soon,
		                  count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked,
		                  count(*) FILTER (WHERE revoked_at IS NULL AND expires_at <= now()) AS expired
		           FROM credentials GROUP BY cluster_id) k ON k.cluster_id = c.id
		ORDER BY c.name`, expiringWithin.Seconds())
	if err != nil {
		return nil, mapErr("cluster stats", err)
	}
	defer rows.Close()
	var all []ClusterStats
	for rows.Next() {
		var st ClusterStats
		var oldest float64
		if err := rows.Scan(&st.Name, &st.HasAgent, &st.Pending, &oldest, &st.Active, &st.ExpiringSoon, &st.Revoked, &st.Expired); err != nil {
			return nil, mapErr("cluster stats", err)
		}
		st.OldestPending = time.Duration(oldest * float64(time.Second))
		all = append(all, st)
	}
	return all, mapErr("cluster stats", rows.Err())
}

// IssuanceLatencies is the histogram of the time from each request to its
// credential, over every credential issued: how many, their sum in seconds,
// and how many took at most each of buckets (seconds, ascending). It is read
// from the database, so it covers every replica and survives restarts.
func (s *Store) IssuanceLatencies(ctx context.Context, buckets []float64) (count int64, sum float64, counts []int64, err error) {
	var q strings.Builder
	q.WriteString("SELECT count(*), coalesce(sum(d), 0)")
	args := make([]any, len(buckets))
	for i, b := range buckets {
		fmt.Fprintf(&q, ", count(*) FILTER (WHERE d <= $%d)", i+1)
		args[i] = b
	}
	q.WriteString(` FROM (SELECT extract(epoch FROM k.issued_at - r.created_at)::float8 AS d
		FROM credentials k JOIN requests r ON r.id = k.request_id) issued`)
	counts = make([]int64, len(buckets))
	dest := []any{&count, &sum}
	for i := range counts {
		dest = append(dest, &counts[i])
	}
	if err := s.db.QueryRow(ctx, q.String(), args...).Scan(dest...); err != nil {
		return 0, 0, nil, mapErr("issuance latencies", err)
	}
	return count, sum, counts, nil
}
