package main

import (
	"fmt"
	"io"
	"net"
	"time"
)

// runUDP sends one datagram and prints the answer: the UDP counterpart of
// get. It tries a few times, since a datagram may be lost where a TCP
// connection would be retried by the kernel.
func runUDP(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: testimage udp HOST:PORT MESSAGE")
		return 2
	}
	conn, err := net.Dial("udp", args[0])
	if err != nil {
		fmt.Fprintf(stderr, "testimage udp: %v\n", err)
		return 1
	}
	defer conn.Close()
	buf := make([]byte, 2048)
	for range 5 {
		if _, err = conn.Write([]byte(args[1])); err != nil {
			break
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		var n int
		if n, err = conn.Read(buf); err == nil {
			fmt.Fprint(stdout, string(buf[:n]))
			return 0
		}
	}
	fmt.Fprintf(stderr, "testimage udp %s: %v\n", args[0], err)
	return 1
}
