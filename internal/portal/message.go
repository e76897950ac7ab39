package portal

import "time"

// Channel is how a message goes out.
type Channel string

// The channels. ChannelNone is a message recorded with no way to send it:
// no channel is configured, or the person has no verified address.
const (
	ChannelEmail   Channel = "email"
	ChannelWebhook Channel = "webhook"
	ChannelNone    Channel = "none"
)

// MessageStatus is where a message stands in the outbox.
type MessageStatus string

// The message statuses. A queued message is delivered, or retried, until it
// is sent or its retries run out (failed); an unsent one had no channel.
const (
	MessageQueued MessageStatus = "queued"
	MessageSent   MessageStatus = "sent"
	MessageFailed MessageStatus = "failed"
	MessageUnsent MessageStatus = "unsent"
)

// Audience is who a message is for.
type Audience string

// The audiences.
const (
	AudienceStaff    Audience = "staff"
	AudienceCustomer Audience = "customer"
)

// Message is one message to one recipient, rendered when the action it
// tells of happened, and written in that action's transaction. It never
// holds a secret: no password, key, token or ciphertext.
type Message struct {
	ID        int64
	CreatedAt time.Time
	Event     Action // the audit action it tells of
	Audience  Audience
	UserID    *int64 // the customer told, for a customer's message
	Channel   Channel
	Recipient string // an email address; "" for the staff webhook
	Subject   string
	Text      string // the plain-text body
	HTML      string // the HTML body, for email
	Link      string // the absolute URL of the page it is about

	Status        MessageStatus
	Attempts      int
	QueuedAt      time.Time // when its retries started: written, or retried by staff
	NextAttemptAt time.Time
	LastError     string
	SentAt        *time.Time
}

// RecipientLabel is the recipient as a person would name it.
func (m *Message) RecipientLabel() string {
	switch {
	case m.Channel == ChannelWebhook:
		return "staff webhook"
	case m.Recipient != "":
		return m.Recipient
	case m.Audience == AudienceStaff:
		return "staff"
	}
	return "the customer"
}

// Failing reports whether delivery is going wrong: failed for good, or
// queued again after a failed attempt.
func (m *Message) Failing() bool {
	return m.Status == MessageFailed || (m.Status == MessageQueued && m.LastError != "")
}

// NotSent is the error an unsent message records when no channel is
// configured for it.
const NotSent = "not sent: no channel configured"
