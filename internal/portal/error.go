package portal

import (
	"fmt"
)

// Kind is what sort of refusal an Error is; the web layer maps each kind to
// one HTTP status, in one place.
type Kind uint8

// The kinds of Error.
const (
	// KindNotFound: the object does not exist, or the caller may not know it
	// does.
	KindNotFound Kind = iota + 1
	// KindForbidden: the caller is known but may not do this.
	KindForbidden
	// KindUnauthorized: the caller did not prove who they are: no sign-in, a
	// missing or wrong token.
	KindUnauthorized
	// KindInvalid: the input is wrong; Field and Message say what to fix.
	KindInvalid
	// KindConflict: the change clashes with the current state: a duplicate,
	// a decision taken already.
	KindConflict
	// KindUnavailable: something the portal depends on (the identity
	// provider, the database) is not answering; trying later may work.
	KindUnavailable
)

var kindNames = map[Kind]string{
	KindNotFound:     "not found",
	KindForbidden:    "forbidden",
	KindUnauthorized: "unauthorized",
	KindInvalid:      "invalid input",
	KindConflict:     "conflict",
	KindUnavailable:  "unavailable",
}

// String names the kind.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind %d", k)
}

// Error is the portal's one error type: a refusal of a Kind, with a sentence
// for the person who asked and, where it helps, the field at fault and a
// link to the object it is about. Callers test the kind with errors.Is
// against the sentinels (ErrNotFound, ErrConflict, …) and read the rest with
// errors.As; a store or driver error wrapped around one keeps its kind.
type Error struct {
	Kind    Kind
	Field   string // the form field or JSON key at fault; "" when it is the whole input
	Message string // a sentence for the person; "" in the sentinels
	// Secret marks the value given for Field as a secret the person should
	// not have sent (a private key pasted as a public one): it is never shown
	// back, stored or logged.
	Secret bool
	Link   *Link // the object the refusal points at, such as the request a duplicate clashes with
}

// Link names an object an Error points at, by its subject type
// (SubjectRequest, …) and ID; the web layer turns it into an address.
type Link struct {
	Subject string
	ID      int64
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Kind.String()
	}
	if e.Field == "" {
		return msg
	}
	return e.Field + ": " + msg
}

// Is reports whether target is the sentinel of e's kind, so that
// errors.Is(err, ErrNotFound) holds for every not-found Error.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Kind]
	return ok && target == s
}

// The sentinels, one per kind. They carry no message: the web layer shows a
// general sentence for them.
var (
	ErrNotFound     = &Error{Kind: KindNotFound}
	ErrForbidden    = &Error{Kind: KindForbidden}
	ErrUnauthorized = &Error{Kind: KindUnauthorized}
	ErrInvalid      = &Error{Kind: KindInvalid}
	ErrConflict     = &Error{Kind: KindConflict}
	ErrUnavailable  = &Error{Kind: KindUnavailable}
)

// ErrDatabaseUnavailable is the store's refusal when PostgreSQL cannot be
// reached, in the words the person sees. It is of KindUnavailable, so
// errors.Is(err, ErrUnavailable) holds for it too. A statement that failed
// so was not committed: the person may send the same again.
var ErrDatabaseUnavailable = &Error{Kind: KindUnavailable,
	Message: "The portal cannot reach its database. Nothing you sent was lost or half-done; try again in a minute."}

var sentinels = map[Kind]error{
	KindNotFound:     ErrNotFound,
	KindForbidden:    ErrForbidden,
	KindUnauthorized: ErrUnauthorized,
	KindInvalid:      ErrInvalid,
	KindConflict:     ErrConflict,
	KindUnavailable:  ErrUnavailable,
}

// Errorf returns an Error of kind with a formatted message for the person.
func Errorf(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an Error of KindInvalid about field, with a formatted
// message saying what to write instead.
func Invalid(field, format string, args ...any) error {
	return &Error{Kind: KindInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}
