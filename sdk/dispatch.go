package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/stoa-rtc/stoa/internal/protocol"
)

// dispatchRequest is the body of POST /v1/dispatch.
type dispatchRequest struct {
	AppID   string `json:"app_id"`
	Channel string `json:"channel"`
	UID     string `json:"uid"`
	Token   string `json:"token"`
	Region  string `json:"region,omitempty"`
}

// dispatchAnswer is the dispatcher's 200 answer: the edges to try in order and the edge ticket naming them.
type dispatchAnswer struct {
	Region string `json:"region"`
	Edges  []Edge `json:"edges"`
	Ticket string `json:"ticket"`
}

// errorBody is the dispatcher's answer to a refused request.
type errorBody struct {
	Error struct {
		Code    Code   `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// maxDispatchBody bounds the dispatcher's answer.
const maxDispatchBody = 64 << 10

// dispatch asks the entry URLs in turn for edges. It moves on to the next URL when one is unreachable, answers with
// a server error (5xx, 429) or with an unusable body, and stops at the first definite refusal (4xx), which it
// returns as an *Error.
func dispatch(ctx context.Context, hc *http.Client, cfg *Config, log *slog.Logger) (*dispatchAnswer, error) {
	body, err := json.Marshal(dispatchRequest{AppID: cfg.AppID, Channel: cfg.Channel, UID: cfg.UID,
		Token: cfg.Token, Region: cfg.Region})
	if err != nil {
		return nil, fmt.Errorf("sdk: dispatch: %w", err)
	}
	var errs []error
	for _, base := range cfg.entryURLs() {
		ans, err := dispatchOne(ctx, hc, cfg, base, body)
		if err == nil {
			return ans, nil
		}
		log.Warn("dispatch failed", "url", redactURL(base), "err", err)
		if final(err) {
			return nil, err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, fmt.Errorf("sdk: dispatch: every entry URL failed: %w", errors.Join(errs...))
}

func dispatchOne(ctx context.Context, hc *http.Client, cfg *Config, base string, body []byte) (*dispatchAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	endpoint := strings.TrimSuffix(base, "/") + "/v1/dispatch"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("sdk: dispatch %s: %w", redactURL(base), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", clientName)
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error names the URL, not the body: the token stays out of the message.
		return nil, fmt.Errorf("sdk: dispatch: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDispatchBody+1))
	if err != nil {
		return nil, fmt.Errorf("sdk: dispatch %s: reading answer: %w", redactURL(base), err)
	}
	if len(b) > maxDispatchBody {
		return nil, fmt.Errorf("sdk: dispatch %s: answer larger than %d bytes", redactURL(base), maxDispatchBody)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{Op: "dispatch", Status: resp.StatusCode, Code: CodeInternal, Message: http.StatusText(resp.StatusCode)}
		var eb errorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			e.Code, e.Message = Code(shorten(string(eb.Error.Code))), shorten(eb.Error.Message)
		} else if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			e.Code = CodeBadRequest
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			e.Code = CodeRateLimited
		}
		return nil, e
	}
	var ans dispatchAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		return nil, fmt.Errorf("sdk: dispatch %s: malformed answer: %w", redactURL(base), err)
	}
	if len(ans.Edges) == 0 {
		return nil, fmt.Errorf("sdk: dispatch %s: no edges in the answer", redactURL(base))
	}
	if len(ans.Ticket) > protocol.MaxTicketLen {
		return nil, fmt.Errorf("sdk: dispatch %s: edge ticket longer than %d bytes", redactURL(base), protocol.MaxTicketLen)
	}
	var edges []Edge
	for _, e := range ans.Edges {
		if err := checkURL(e.URL, "wss", "ws", cfg.Insecure); err != nil {
			continue // an edge the client must not talk to; the others may do
		}
		edges = append(edges, e)
	}
	if len(edges) == 0 {
		return nil, fmt.Errorf("sdk: dispatch %s: no usable edge URL (wss:// needed, ws:// only on loopback)", redactURL(base))
	}
	ans.Edges = edges
	return &ans, nil
}

// redactURL drops user info and the query from u for logs and errors.
func redactURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			u = u[:j+3] + u[i+1:]
		}
	}
	return shorten(u)
}
