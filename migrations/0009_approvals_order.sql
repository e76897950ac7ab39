-- The approvers of each request in the order they approved, for the lists
-- of requests: every row of a page reads its request's approvals, and this
-- index gives them in order, approver included, without a sort or a visit
-- to the table.

-- +goose Up
CREATE INDEX request_approvals_order_idx ON request_approvals (request_id, approved_at) INCLUDE (approver_id);

-- +goose Down
DROP INDEX request_approvals_order_idx;
