package apiserver

// growStack gives the calling goroutine a stack of at least 32 KiB at once. net/http starts
// every request on a new goroutine whose stack is small (the runtime's average over all
// goroutines, which thousands of idle watchers keep low), and a write's field management
// and validation (structured-merge-diff's recursive walks) then grow it 2x at a time, each
// growth a copy of the whole stack used so far: 6 % of a leader's CPU while scheduling
// 10,000 pods. Grown here, while the stack is still shallow, it is copied once and cheaply.
// CockroachDB's growstack does the same for its storage paths.
//
//go:noinline
func growStack() {
	var buf [16 << 10]byte
	stackSink(buf[:])
}

//go:noinline
func stackSink([]byte) {}
