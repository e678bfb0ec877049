// SPDX-License-Identifier: Apache-2.0
//
// ttrpc-interop: the Go side of sealpod's ttRPC interop tests and
// benchmark, built against Debian's golang-github-containerd-ttrpc-dev
// (v1.1.1, the version containerd 1.6 vendors) in GOPATH mode.
//
//	ttrpc-interop serve ADDR    serve sealpod.test.Echo until SIGTERM
//	ttrpc-interop check ADDR    run the interop checks against a server
//	ttrpc-interop bench ADDR N  N sequential small calls; prints JSON
//
// The service is the one bench/bench-ttrpc-echo.c implements; see there.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/proto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	service      = "sealpod.test.Echo"
	maxMessage   = 4 << 20
	growOverhead = 10 // Response{payload: Bytes{data}}, no status when OK
)

// Bytes is the payload of every method: message Bytes { bytes data = 1; }.
type Bytes struct {
	Data []byte `protobuf:"bytes,1,opt,name=data,proto3"`
}

func (m *Bytes) Reset()         { *m = Bytes{} }
func (m *Bytes) String() string { return fmt.Sprintf("Bytes(%d)", len(m.Data)) }
func (*Bytes) ProtoMessage()    {}

func unixPath(addr string) string {
	addr = strings.TrimPrefix(addr, "unix://")
	return strings.TrimPrefix(addr, "unix:")
}

func decode(unmarshal func(interface{}) error) (*Bytes, error) {
	var b Bytes
	if err := unmarshal(&b); err != nil {
		return nil, err
	}
	return &b, nil
}

func methods() map[string]ttrpc.Method {
	return map[string]ttrpc.Method{
		"Echo": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			return decode(u)
		},
		"Fail": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			b, err := decode(u)
			if err != nil {
				return nil, err
			}
			parts := strings.SplitN(string(b.Data), ":", 2)
			code, _ := strconv.Atoi(parts[0])
			msg := ""
			if len(parts) == 2 {
				msg = parts[1]
			}
			return nil, status.Error(codes.Code(code), msg)
		},
		"Sleep": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			b, err := decode(u)
			if err != nil {
				return nil, err
			}
			ms, _ := strconv.Atoi(string(b.Data))
			time.Sleep(time.Duration(ms) * time.Millisecond)
			return b, nil
		},
		"Meta": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			var sb strings.Builder
			if md, ok := ttrpc.GetMetadata(ctx); ok {
				keys := make([]string, 0, len(md))
				for k := range md {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					for _, v := range md[k] {
						fmt.Fprintf(&sb, "%s=%s\n", k, v)
					}
				}
			}
			return &Bytes{Data: []byte(sb.String())}, nil
		},
		"Deadline": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			dl, ok := ctx.Deadline()
			if !ok {
				return &Bytes{Data: []byte("none")}, nil
			}
			left := time.Until(dl).Milliseconds()
			return &Bytes{Data: []byte(strconv.FormatInt(left, 10))}, nil
		},
		"Grow": func(ctx context.Context, u func(interface{}) error) (interface{}, error) {
			b, err := decode(u)
			if err != nil {
				return nil, err
			}
			n, _ := strconv.Atoi(string(b.Data))
			if n < (2<<20)+growOverhead || n > 64<<20 {
				return nil, status.Error(codes.InvalidArgument, "Grow takes an envelope size between 2 MiB and 64 MiB")
			}
			return &Bytes{Data: make([]byte, n-growOverhead)}, nil
		},
	}
}

func serve(addr string) int {
	path := unixPath(addr)
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ttrpc-interop:", err)
		return 1
	}
	s, err := ttrpc.NewServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ttrpc-interop:", err)
		return 1
	}
	s.Register(service, methods())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		s.Close()
	}()
	fmt.Println("ready")
	if err := s.Serve(context.Background(), l); err != nil && err != ttrpc.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "ttrpc-interop:", err)
		return 1
	}
	return 0
}

type checker struct {
	client   *ttrpc.Client
	failures int
}

func (c *checker) call(ctx context.Context, method string, data []byte, timeout time.Duration) ([]byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var resp Bytes
	err := c.client.Call(ctx, service, method, &Bytes{Data: data}, &resp)
	return resp.Data, err
}

func (c *checker) check(name string, ok bool, format string, args ...interface{}) {
	if ok {
		fmt.Printf("ok   %s\n", name)
		return
	}
	c.failures++
	fmt.Printf("FAIL %s: %s\n", name, fmt.Sprintf(format, args...))
}

// requestSize is the size of the Request envelope our client would send.
func requestSize(method string, dataLen int, timeout time.Duration) int {
	payload, _ := proto.Marshal(&Bytes{Data: make([]byte, dataLen)})
	r := &ttrpc.Request{Service: service, Method: method, Payload: payload,
		TimeoutNano: timeout.Nanoseconds()}
	b, _ := proto.Marshal(r)
	return len(b)
}

func runCheck(addr string) int {
	conn, err := net.Dial("unix", unixPath(addr))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ttrpc-interop:", err)
		return 1
	}
	c := &checker{client: ttrpc.NewClient(conn)}
	defer c.client.Close()
	bg := context.Background()
	sec := 5 * time.Second

	out, err := c.call(bg, "Echo", []byte("hello"), sec)
	c.check("unary echo", err == nil && string(out) == "hello", "%v %q", err, out)
	out, err = c.call(bg, "Echo", nil, sec)
	c.check("empty payload", err == nil && len(out) == 0, "%v", err)

	for _, f := range []struct {
		in   string
		code codes.Code
	}{{"5:no such container", codes.NotFound}, {"7:policy says no", codes.PermissionDenied},
		{"3:bad id", codes.InvalidArgument}, {"9:not running", codes.FailedPrecondition},
		{"13:boom", codes.Internal}} {
		_, err = c.call(bg, "Fail", []byte(f.in), sec)
		st, _ := status.FromError(err)
		want := strings.SplitN(f.in, ":", 2)[1]
		c.check("error status", st.Code() == f.code && st.Message() == want,
			"%s: got %v %q", f.in, st.Code(), st.Message())
	}

	var resp Bytes
	err = c.client.Call(bg, service, "Nope", &Bytes{}, &resp)
	c.check("unknown method", status.Code(err) == codes.Unimplemented, "%v", err)
	err = c.client.Call(bg, "no.such.Service", "Echo", &Bytes{}, &resp)
	c.check("unknown service", status.Code(err) == codes.Unimplemented, "%v", err)

	mctx := ttrpc.WithMetadata(bg, ttrpc.MD{
		"containerd-namespace-ttrpc": {"k8s.io"},
		"x-multi":                    {"1", "2"},
	})
	out, err = c.call(mctx, "Meta", nil, sec)
	c.check("metadata", err == nil && strings.Contains(string(out), "containerd-namespace-ttrpc=k8s.io\n") &&
		strings.Contains(string(out), "x-multi=1\nx-multi=2\n"), "%v %q", err, out)

	out, err = c.call(bg, "Deadline", nil, sec)
	left, _ := strconv.Atoi(string(out))
	c.check("timeout_nano reaches the handler", err == nil && left > 3000 && left <= 5000, "%v %q", err, out)
	out, err = c.call(bg, "Deadline", nil, 0)
	c.check("timeout_nano reaches the handler", err == nil && string(out) == "none", "%v %q", err, out)

	_, err = c.call(bg, "Sleep", []byte("500"), 100*time.Millisecond)
	c.check("client timeout", err == context.DeadlineExceeded, "%v", err)

	out, err = c.call(bg, "Peer", nil, sec)
	want := fmt.Sprintf("%d %d %d", os.Getpid(), os.Getuid(), os.Getgid())
	c.check("peer credentials (SO_PEERCRED)", err == nil && string(out) == want, "%v %q, want %q", err, out, want)

	big := 20 * time.Second
	n := maxMessage - 64
	for requestSize("Echo", n+1, big) <= maxMessage {
		n++
	}
	data := make([]byte, n+1)
	for i := range data {
		data[i] = byte(i * 31)
	}
	out, err = c.call(bg, "Echo", data[:n], big)
	c.check("payload near the 4 MiB limit", err == nil && string(out) == string(data[:n]), "%v (%d bytes back)", err, len(out))
	// Go's client sends an oversized request; the server must discard it
	// and answer RESOURCE_EXHAUSTED on the same stream.
	_, err = c.call(bg, "Echo", data, big)
	c.check("request just over the limit", status.Code(err) == codes.ResourceExhausted, "%v", err)

	out, err = c.call(bg, "Grow", []byte(strconv.Itoa(maxMessage)), big)
	c.check("response at the limit", err == nil && len(out) == maxMessage-growOverhead, "%v %d", err, len(out))
	_, err = c.call(bg, "Grow", []byte(strconv.Itoa(maxMessage+1)), big)
	c.check("response just over the limit", status.Code(err) == codes.ResourceExhausted, "%v", err)

	out, err = c.call(bg, "Echo", []byte("again"), sec)
	c.check("connection usable after the limits", err == nil && string(out) == "again", "%v", err)

	var wg sync.WaitGroup
	var mu sync.Mutex
	okCount := 0
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			in := strconv.Itoa((i * 7) % 50)
			out, err := c.call(bg, "Sleep", []byte(in), 20*time.Second)
			if err == nil && string(out) == in {
				mu.Lock()
				okCount++
				mu.Unlock()
			} else {
				fmt.Fprintf(os.Stderr, "concurrent call %d: %v\n", i, err)
			}
		}(i)
	}
	wg.Wait()
	c.check("100 concurrent calls", okCount == 100, "%d of 100 succeeded", okCount)

	if c.failures > 0 {
		fmt.Println("FAILED")
		return 1
	}
	fmt.Println("ALL OK")
	return 0
}

func bench(addr string, n int) int {
	conn, err := net.Dial("unix", unixPath(addr))
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "ttrpc-interop:", err)
		return 1
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	req := &Bytes{Data: []byte("ping-0123456789")}
	var resp Bytes
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := client.Call(ctx, service, "Echo", req, &resp); err != nil {
			fmt.Fprintln(os.Stderr, "ttrpc-interop:", err)
			return 1
		}
	}
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		t := time.Now()
		if err := client.Call(ctx, service, "Echo", req, &resp); err != nil {
			fmt.Fprintln(os.Stderr, "ttrpc-interop:", err)
			return 1
		}
		lat[i] = time.Since(t)
	}
	total := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("{\"calls\": %d, \"rps\": %.0f, \"median_us\": %.1f, \"p99_us\": %.1f}\n", n,
		float64(n)/total.Seconds(), float64(lat[n/2].Nanoseconds())/1e3,
		float64(lat[int(float64(n)*0.99)].Nanoseconds())/1e3)
	return 0
}

func main() {
	args := os.Args[1:]
	switch {
	case len(args) == 2 && args[0] == "serve":
		os.Exit(serve(args[1]))
	case len(args) == 2 && args[0] == "check":
		os.Exit(runCheck(args[1]))
	case len(args) == 3 && args[0] == "bench":
		n, _ := strconv.Atoi(args[2])
		os.Exit(bench(args[1], n))
	}
	fmt.Fprintln(os.Stderr, "usage: ttrpc-interop serve ADDR | check ADDR | bench ADDR N")
	os.Exit(2)
}
