-- Access policy per cluster: who is approved at once by the portal itself,
-- how many distinct staff must approve otherwise, the longest lifetime staff
-- may grant, and how long a request may wait.
--
-- Every staff approval is a row of request_approvals; the request is decided
-- (and its credential issued) by the approval that brings the count to what
-- the cluster's policy asks for when it is given. A request the policy
-- approves names the rule in decided_by_rule and has no decider.

-- +goose Up
ALTER TABLE clusters
    ADD COLUMN auto_approve_email_domains text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN auto_approve_groups        text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN approvals_required         integer NOT NULL DEFAULT 1 CHECK (approvals_required BETWEEN 1 AND 2),
    -- 0: no longer than credential_ttl_days.
    ADD COLUMN max_ttl_days               integer NOT NULL DEFAULT 0 CHECK (max_ttl_days BETWEEN 0 AND 3650),
    -- 0: the portal's PORTAL_REQUEST_TTL.
    ADD COLUMN request_ttl_days           integer NOT NULL DEFAULT 0 CHECK (request_ttl_days BETWEEN 0 AND 365),
    ADD CONSTRAINT clusters_max_ttl_check CHECK (max_ttl_days = 0 OR max_ttl_days >= credential_ttl_days);

CREATE TABLE request_approvals (
    request_id  bigint      NOT NULL REFERENCES requests (id),
    approver_id bigint      NOT NULL REFERENCES users (id),
    note        text        NOT NULL DEFAULT '',
    -- The last day this approver agreed the credential may work; NULL for
    -- the cluster's default lifetime. The earliest of them is granted.
    expires_on  date,
    approved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, approver_id)
);

ALTER TABLE requests ADD COLUMN decided_by_rule text NOT NULL DEFAULT '';
ALTER TABLE requests DROP CONSTRAINT requests_decided_by_check;
ALTER TABLE requests ADD CONSTRAINT requests_decided_by_check
    CHECK (CASE WHEN status IN ('pending', 'expired') THEN decided_by IS NULL AND decided_by_rule = ''
                WHEN status = 'approved' AND decided_by_rule <> '' THEN decided_by IS NULL
                ELSE decided_by IS NOT NULL AND decided_by_rule = '' END);

-- +goose Down
ALTER TABLE requests DROP CONSTRAINT requests_decided_by_check;
ALTER TABLE requests DROP COLUMN decided_by_rule;
-- Requests the policy approved have no decider, which the older schema
-- cannot say: they are kept as they are, unchecked.
ALTER TABLE requests ADD CONSTRAINT requests_decided_by_check
    CHECK (CASE status WHEN 'pending' THEN decided_by IS NULL
                       WHEN 'expired' THEN decided_by IS NULL
                       ELSE decided_by IS NOT NULL END) NOT VALID;
DROP TABLE request_approvals;
ALTER TABLE clusters
    DROP CONSTRAINT clusters_max_ttl_check,
    DROP COLUMN request_ttl_days,
    DROP COLUMN max_ttl_days,
    DROP COLUMN approvals_required,
    DROP COLUMN auto_approve_groups,
    DROP COLUMN auto_approve_email_domains;
