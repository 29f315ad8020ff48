package bench

import "context"

// system is one store under test as its clients see it. The workloads know nothing else
// about it (STYLE.md practice 6: the consumer defines the interface it needs).
type system interface {
	// Name is SystemSkiff or SystemEtcd.
	Name() string
	// Members is how many members clients can connect to.
	Members() int
	// Leader is the index of the member that currently leads.
	Leader(ctx context.Context) (int, error)
	// Dial opens a new client with its own connection(s) to member i, as one real client
	// would have.
	Dial(ctx context.Context, member int) (client, error)
}

// client is one connection to one member.
type client interface {
	// Put writes key; it returns once the write is acknowledged (committed by a quorum).
	Put(ctx context.Context, key string, value []byte) error
	// Get reads key linearizably.
	Get(ctx context.Context, key string) error
	// Watch streams changes under prefix from now on. It calls ready once the watch is
	// established (changes after that are seen), then event for each change, and returns
	// when ctx ends (nil) or the stream fails.
	Watch(ctx context.Context, prefix string, ready func(), event func(key string)) error
	Close() error
}
