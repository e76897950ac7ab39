package main

import (
	"errors"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/2i2c-org/credential-portal/internal/outbox"
	"github.com/2i2c-org/credential-portal/internal/portal"
	"github.com/2i2c-org/credential-portal/internal/workflow"
)

// notifyConfig is how people are told of what happens, the same for
// `portal serve` and `portal dev`.
type notifyConfig struct {
	SMTPURL     string
	MailFrom    string
	StaffEmails []string
	WebhookURL  string
	RequestTTL  time.Duration
}

func (c *notifyConfig) settings() []setting {
	return []setting{
		{env: "PORTAL_SMTP_URL", flag: "smtp-url", secret: true, parse: stringVar(&c.SMTPURL),
			usage: "mail relay: smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (TLS); plain SMTP only to a loopback host. Unset: no mail is sent"},
		{env: "PORTAL_MAIL_FROM", flag: "mail-from", parse: mailFromVar(&c.MailFrom),
			usage: "the From of the portal's mail, e.g. '2i2c credential portal <credentials@2i2c.org>'"},
		{env: "PORTAL_STAFF_NOTIFY_EMAILS", flag: "staff-notify-emails", parse: emailsVar(&c.StaffEmails),
			usage: "where staff messages (new requests, compromise reports) are mailed, comma separated"},
		{env: "PORTAL_STAFF_WEBHOOK_URL", flag: "staff-webhook-url", secret: true, parse: stringVar(&c.WebhookURL),
			usage: "a Slack-compatible incoming webhook that staff messages are posted to"},
		{env: "PORTAL_REQUEST_TTL", flag: "request-ttl", def: "336h", parse: durationVar(&c.RequestTTL),
			usage: "how long a request waits for a decision before it expires, e.g. 336h (14 days)"},
	}
}

// emailsVar takes a comma-separated list of email addresses.
func emailsVar(p *[]string) func(string) error {
	list := listVar(p)
	return func(v string) error {
		if err := list(v); err != nil {
			return err
		}
		for i, a := range *p {
			addr, err := mail.ParseAddress(a)
			if err != nil {
				return errors.New("want email addresses separated by commas; " + strconv.Quote(a) + " is not one")
			}
			(*p)[i] = addr.Address
		}
		return nil
	}
}

// mailFromVar takes one address, with or without a name.
func mailFromVar(p *string) func(string) error {
	return func(v string) error {
		*p = strings.TrimSpace(v)
		if *p == "" {
			return nil
		}
		if _, err := mail.ParseAddress(*p); err != nil {
			return errors.New("want one email address, e.g. 'Credential portal <credentials@2i2c.org>'")
		}
		return nil
	}
}

// channels builds the senders the settings ask for, and the workflow's
// view of them. devMail, when not nil, takes the mail when no relay is set
// (`portal dev`): staff mail then goes to staffDefault unless addresses are
// set.
func (c *notifyConfig) channels(devMail *outbox.Capture, staffDefault []string) (map[portal.Channel]outbox.Sender, workflow.NotifyOptions, error) {
	senders := map[portal.Channel]outbox.Sender{}
	opts := workflow.NotifyOptions{StaffEmails: c.StaffEmails, RequestTTL: c.RequestTTL}
	switch {
	case c.SMTPURL != "":
		if c.MailFrom == "" {
			return nil, opts, &configError{name: "PORTAL_MAIL_FROM", given: `""`, want: "required with PORTAL_SMTP_URL: the address the portal's mail comes from"}
		}
		m, err := outbox.NewMailer(c.SMTPURL, c.MailFrom)
		if err != nil {
			return nil, opts, &configError{name: "PORTAL_SMTP_URL", given: "(hidden)", want: err.Error()}
		}
		senders[portal.ChannelEmail] = m
	case devMail != nil:
		senders[portal.ChannelEmail] = devMail
		if len(opts.StaffEmails) == 0 {
			opts.StaffEmails = staffDefault
		}
	case len(c.StaffEmails) > 0:
		return nil, opts, &configError{name: "PORTAL_STAFF_NOTIFY_EMAILS", given: strconv.Quote(strings.Join(c.StaffEmails, ",")),
			want: "set PORTAL_SMTP_URL too: without a mail relay no mail can be sent"}
	}
	if c.WebhookURL != "" {
		w, err := outbox.NewWebhook(c.WebhookURL, nil)
		if err != nil {
			return nil, opts, &configError{name: "PORTAL_STAFF_WEBHOOK_URL", given: "(hidden)", want: err.Error()}
		}
		senders[portal.ChannelWebhook] = w
	}
	_, opts.Email = senders[portal.ChannelEmail]
	_, opts.Webhook = senders[portal.ChannelWebhook]
	return senders, opts, nil
}
