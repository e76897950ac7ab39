package workflow

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/2i2c-org/credential-portal/internal/message"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/store"
)

// DefaultRequestTTL is how long a request may wait for a decision before
// it expires.
const DefaultRequestTTL = 14 * 24 * time.Hour

// Channels are the ways messages can go out.
type Channels struct {
	Email   bool // SMTP is configured: customers get mail, and the staff addresses
	Webhook bool // the staff webhook is configured
}

// NotifyOptions say how people are told of what happens: the channels
// configured, where staff mail goes, and where links point.
type NotifyOptions struct {
	// BaseURL is the portal's address, which every link in a message starts
	// with.
	BaseURL *url.URL
	Channels
	// StaffEmails are the addresses staff messages go to by email.
	StaffEmails []string
	// RequestTTL is how long a pending request waits before it expires;
	// DefaultRequestTTL when 0.
	RequestTTL time.Duration
}

func (n NotifyOptions) channels() Channels { return n.Channels }

// link is the absolute URL of a page of the portal's, for messages.
func (n NotifyOptions) link(path string, query url.Values) string {
	u := n.BaseURL.JoinPath(path)
	u.RawQuery = query.Encode()
	return u.String()
}

// requestLink is the page of a request; staff decide it in the queue.
func (n NotifyOptions) requestLink(id int64, staff bool) string {
	if staff {
		return n.link("/staff/requests", nil) + "#request-" + strconv.FormatInt(id, 10)
	}
	return n.link("/requests/"+strconv.FormatInt(id, 10), nil)
}

func (n NotifyOptions) credentialLink(id int64) string {
	return n.link("/credentials/"+strconv.FormatInt(id, 10), nil)
}

func (n NotifyOptions) newRequestLink(cluster string) string {
	return n.link("/requests/new", url.Values{"cluster": {cluster}})
}

// toStaff composes the staff's messages of an event: one email to each
// staff address and one post to the webhook, as configured; with neither,
// one message recorded as not sent.
func (n NotifyOptions) toStaff(f message.Facts) ([]*portal.Message, error) {
	c, err := message.Compose(f)
	if err != nil {
		return nil, err
	}
	base := portal.Message{Event: f.Event, Audience: portal.AudienceStaff, Subject: c.Subject, Text: c.Text, HTML: c.HTML, Link: f.Link}
	var ms []*portal.Message
	if n.Email {
		for _, to := range n.StaffEmails {
			m := base
			m.Channel, m.Recipient = portal.ChannelEmail, to
			ms = append(ms, &m)
		}
	}
	if n.Webhook {
		m := base
		m.Channel, m.Text, m.HTML = portal.ChannelWebhook, c.Webhook, ""
		ms = append(ms, &m)
	}
	if len(ms) == 0 {
		m := base
		m.Channel, m.LastError = portal.ChannelNone, portal.NotSent
		ms = append(ms, &m)
	}
	return ms, nil
}

// toCustomer composes the message of an event to the customer userID, by
// email to their address if the identity provider verified it; otherwise it
// is recorded as not sent, and why.
func (n NotifyOptions) toCustomer(f message.Facts, userID int64, email string, verified bool) ([]*portal.Message, error) {
	c, err := message.Compose(f)
	if err != nil {
		return nil, err
	}
	m := &portal.Message{Event: f.Event, Audience: portal.AudienceCustomer, UserID: &userID,
		Subject: c.Subject, Text: c.Text, HTML: c.HTML, Link: f.Link, Channel: portal.ChannelEmail, Recipient: email}
	switch {
	case !n.Email:
		m.Channel, m.LastError = portal.ChannelNone, portal.NotSent
	case email == "" || !verified:
		m.Channel, m.LastError = portal.ChannelNone, "not sent: the person has no verified email address"
	}
	return []*portal.Message{m}, nil
}

// customerName is how staff messages name a customer.
func customerName(name, email string) string {
	switch {
	case name == "" || name == email:
		return email
	case email == "":
		return name
	}
	return name + " <" + email + ">"
}

// tell writes messages just composed to the outbox, in the action's
// transaction: if they cannot be written, the action fails, so that a
// committed action always has its messages. For a call such as
// tell(ctx, tx)(s.notify.toStaff(facts)).
func tell(ctx context.Context, tx *store.Store) func([]*portal.Message, error) error {
	return func(ms []*portal.Message, err error) error {
		if err != nil {
			return err
		}
		return tx.QueueMessages(ctx, ms...)
	}
}
