package server

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// outboxStatuses are the tabs of the notifications page, "" for all.
var outboxStatuses = []portal.MessageStatus{"", portal.MessageQueued, portal.MessageSent, portal.MessageFailed, portal.MessageUnsent}

// notificationsPage is the staff view of the outbox.
type notificationsPage struct {
	Status   portal.MessageStatus
	Statuses []portal.MessageStatus
	Messages []*portal.Message
	Channels workflow.Channels
	First    bool   // the newest page
	Newest   string // the first page of the same status
	Older    string // the next page, or ""
}

// notificationsURL is the notifications page of status ("" for all), from
// the message before (0 for the newest).
func notificationsURL(status portal.MessageStatus, before int64) string {
	v := url.Values{}
	if status != "" {
		v.Set("status", string(status))
	}
	if before != 0 {
		v.Set("before", strconv.FormatInt(before, 10))
	}
	if len(v) == 0 {
		return "/staff/notifications"
	}
	return "/staff/notifications?" + v.Encode()
}

func (s *Server) notifications(cl call) (page, error) {
	status := portal.MessageStatus(cl.c.QueryParam("status"))
	var before int64
	if v := cl.c.QueryParam("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return page{}, portal.Invalid("before", "before is the number of a message.")
		}
		before = n
	}
	limit, err := portal.ParsePageLimit(cl.c.QueryParam("limit"))
	if err != nil {
		return page{}, err
	}
	out, err := s.wf.Outbox(cl.ctx, cl.actor, status, before, limit)
	if err != nil {
		return page{}, err
	}
	// The links keep a limit given; without one, they are the plain ones
	// the audit log links to.
	withLimit := func(u string) string {
		if v := cl.c.QueryParam("limit"); v != "" {
			sep := "?"
			if strings.Contains(u, "?") {
				sep = "&"
			}
			u += sep + "limit=" + v
		}
		return u
	}
	p := notificationsPage{Status: status, Statuses: outboxStatuses, Messages: out.Messages, Channels: out.Channels,
		First: before == 0, Newest: withLimit(notificationsURL(status, 0))}
	if out.Next != 0 {
		p.Older = withLimit(notificationsURL(status, out.Next))
	}
	return page{Title: "Notifications", Data: p}, nil
}

// retryMessage queues a failed message again and goes back to the tab the
// form was on.
func (s *Server) retryMessage(f call) (done, error) {
	if err := s.wf.RetryMessage(f.ctx, f.actor, f.id); err != nil {
		return done{}, err
	}
	back := portal.MessageStatus(f.c.FormValue("status"))
	if !slices.Contains(outboxStatuses, back) {
		back = ""
	}
	return done{"success", fmt.Sprintf("Message #%d queued again.", f.id), notificationsURL(back, 0)}, nil
}
