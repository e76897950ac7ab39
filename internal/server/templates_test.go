package server

import (
	"html/template"
	"strings"
	"testing"
	"time"
)

// TestTimeHelpers: when, ago and until say a time as people read it, to the
// unit, with "1 hour" but "2 hours", and when prints the exact time twice,
// for machines and for people.
func TestTimeHelpers(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		d    time.Duration // how long ago
		want string
	}{
		{0, "less than a minute"},
		{59 * time.Second, "less than a minute"},
		{61 * time.Second, "1 minute"},
		{59*time.Minute + 30*time.Second, "59 minutes"},
		{time.Hour + time.Second, "1 hour"},
		{47*time.Hour + 59*time.Minute, "47 hours"},
		{48*time.Hour + time.Second, "2 days"},
		{400 * 24 * time.Hour, "400 days"},
		{-time.Hour, "less than a minute"}, // ago of a time ahead
	} {
		if got := ago(now.Add(-tt.d)); got != tt.want {
			t.Errorf("ago(now - %v) = %q, want %q", tt.d, got, tt.want)
		}
		if tt.d > 0 {
			if got := until(now.Add(tt.d + time.Second)); got != tt.want {
				t.Errorf("until(now + %v) = %q, want %q", tt.d, got, tt.want)
			}
		}
	}
	past := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	want := `<time datetime="2026-03-04T04:06:07Z" title="2026-03-04 04:06 UTC">2026-03-04 04:06 UTC</time> <span class="ago">(` +
		ago(past) + ` ago)</span>`
	if got := when(past); string(got) != want {
		t.Errorf("when(%v)\n = %s\nwant %s", past, got, want)
	}
	ahead := now.Add(3*24*time.Hour + time.Minute).Truncate(time.Second)
	if got := string(when(ahead)); !strings.HasSuffix(got, `<span class="ago">(in 3 days)</span>`) ||
		!strings.HasPrefix(got, `<time datetime="`+ahead.UTC().Format(time.RFC3339)+`" title="`+ahead.UTC().Format(minuteLayout)+`">`) {
		t.Errorf("when(now + 3 days) = %s", got)
	}
}

// TestLongAndClipCountCharacters: long and clip cut by characters, not
// bytes, whatever the text (a fingerprint is ASCII; other text may not be,
// or may not even be UTF-8, whose bad bytes show as U+FFFD), and escape it.
func TestLongAndClipCountCharacters(t *testing.T) {
	whole := func(s string) template.HTML { return template.HTML(`<code class="long">` + s + `</code>`) }
	cut := func(head, tail, all string) template.HTML {
		return template.HTML(`<details class="long"><summary><code>` + head + "…" + tail +
			`</code><span class="visually-hidden"> (show all)</span></summary><code>` + all + `</code></details>`)
	}
	fp := "SHA256:4kRpO0Cp0XZKpOv9d5S2lwjyBW3Qy0dF9vVd1ZCqXwA"
	for _, tt := range []struct {
		name, in string
		want     template.HTML
	}{
		{"short", "age1abc", whole("age1abc")},
		{"26 characters, whole", strings.Repeat("a", 26), whole(strings.Repeat("a", 26))},
		{"a fingerprint, cut", fp, cut("SHA256:4kR", "vVd1ZCqXwA", fp)},
		{"26 accented characters, whole", strings.Repeat("é", 26), whole(strings.Repeat("é", 26))},
		{"accented, cut by characters", strings.Repeat("é", 10) + "xxxxxxx" + strings.Repeat("ü", 10),
			cut(strings.Repeat("é", 10), strings.Repeat("ü", 10), strings.Repeat("é", 10)+"xxxxxxx"+strings.Repeat("ü", 10))},
		{"bad bytes", strings.Repeat("\xff", 30), cut(strings.Repeat("\uFFFD", 10), strings.Repeat("\uFFFD", 10), strings.Repeat("\xff", 30))},
		{"markup", "<b>" + strings.Repeat("x", 30) + "&", cut("&lt;b&gt;xxxxxxx", "xxxxxxxxx&amp;", "&lt;b&gt;"+strings.Repeat("x", 30)+"&amp;")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := long(tt.in); got != tt.want {
				t.Errorf("long(%q)\n = %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
	if got, want := clip("ünïcödé details", 5), template.HTML(`<details class="clip"><summary><code>ünïcö…</code></summary><code class="details">ünïcödé details</code></details>`); got != want {
		t.Errorf("clip = %q, want %q", got, want)
	}
	if got, want := clip("short", 5), template.HTML(`<code class="details">short</code>`); got != want {
		t.Errorf("clip = %q, want %q", got, want)
	}
}

// TestBadge: a status's badge names it twice, escaped when it is not one of
// the domain's plain words.
func TestBadge(t *testing.T) {
	if got, want := badge("active"), template.HTML(`<span class="status status-active">active</span>`); got != want {
		t.Errorf("badge(active) = %s, want %s", got, want)
	}
	if got, want := badge(`"><x>`), template.HTML(`<span class="status status-&#34;&gt;&lt;x&gt;">&#34;&gt;&lt;x&gt;</span>`); got != want {
		t.Errorf("badge = %s, want %s", got, want)
	}
}
