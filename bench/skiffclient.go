package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// skiffClient speaks a store node's HTTP/1.1 client API (cmd/skiff store-node):
//
//	PUT /v1/kv?key=K            body is the value; replies {"revision":N}
//	GET /v1/kv?key=K            linearizable read; the value, 404 when absent
//	GET /v1/watch?prefix=P      a stream of JSON lines {"type","key","revision"}, one per event
//
// Each client has its own transport, so concurrent clients hold their own connections as
// separate real clients would.
type skiffClient struct {
	base string
	hc   *http.Client
	tr   *http.Transport
}

func newSkiffClient(addr string) *skiffClient {
	tr := &http.Transport{
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &skiffClient{base: "http://" + addr, hc: &http.Client{Transport: tr}, tr: tr}
}

func (c *skiffClient) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	return c.hc.Do(req)
}

// drain reads the rest of a reply so the connection is reused, and turns a non-2xx status
// into an error.
func drain(resp *http.Response) error {
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	_, err := io.Copy(io.Discard, resp.Body)
	return err
}

func (c *skiffClient) Put(ctx context.Context, key string, value []byte) error {
	resp, err := c.do(ctx, http.MethodPut, "/v1/kv?key="+url.QueryEscape(key), value)
	if err != nil {
		return err
	}
	return drain(resp)
}

func (c *skiffClient) Get(ctx context.Context, key string) error {
	resp, err := c.do(ctx, http.MethodGet, "/v1/kv?key="+url.QueryEscape(key), nil)
	if err != nil {
		return err
	}
	return drain(resp)
}

// watchLine is one event of the watch stream.
type watchLine struct {
	Type     string `json:"type"`
	Key      string `json:"key"`
	Revision int64  `json:"revision"`
}

func (c *skiffClient) Watch(ctx context.Context, prefix string, ready func(), event func(key string)) error {
	// The node sends the headers only once its watcher is registered.
	resp, err := c.do(ctx, http.MethodGet, "/v1/watch?prefix="+url.QueryEscape(prefix), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return drain(resp)
	}
	ready()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev watchLine
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("bad watch line %q: %w", sc.Text(), err)
		}
		event(ev.Key)
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("watch stream ended")
}

func (c *skiffClient) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}
