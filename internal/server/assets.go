package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/2i2c-org/credential-portal/web"
)

// assets are the embedded static files with a content hash each, so that
// their URLs change when they do and can be cached for a year.
type assets struct {
	static fs.FS
	hashes map[string]string
}

func loadAssets() (*assets, error) {
	static, err := fs.Sub(web.FS, "static")
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	a := &assets{static: static, hashes: make(map[string]string)}
	err = fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		a.hashes[p] = hex.EncodeToString(sum[:8])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	return a, nil
}

// url is the address of a static file, versioned by its content.
func (a *assets) url(name string) (string, error) {
	h, ok := a.hashes[name]
	if !ok {
		return "", fmt.Errorf("no static file %q", name)
	}
	return "/static/" + name + "?v=" + h, nil
}

// static serves an embedded file. A URL naming the current version is
// immutable; any other is cached briefly and revalidated by ETag.
func (s *Server) static(c echo.Context) error {
	name := c.Param("*")
	h, ok := s.assets.hashes[name]
	if !ok {
		return echo.ErrNotFound
	}
	f, err := s.assets.static.Open(name)
	if err != nil {
		return fmt.Errorf("static %s: %w", name, err)
	}
	defer f.Close()
	hdr := c.Response().Header()
	hdr.Set("ETag", `"`+h+`"`)
	if c.QueryParam("v") == h {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "public, max-age=300")
	}
	http.ServeContent(c.Response(), c.Request(), name, time.Time{}, f.(readSeeker))
	return nil
}

type readSeeker interface {
	Read([]byte) (int, error)
	Seek(int64, int) (int64, error)
}
