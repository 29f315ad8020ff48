package raftlog

import "sync"

// prealloc keeps zeroed, synced space ahead of the tail segment's write offset, in the
// background, so that the foreground fdatasync overwrites allocated blocks instead of
// extending the file. It never writes where the log has written or is writing: the log
// claims each region before writing it, waiting for a zeroing that overlaps it.
type prealloc struct {
	l    *Log
	mu   sync.Mutex
	cond sync.Cond
	seg  *segment // the tail; nil when there is none
	upto int64    // [0, upto) of seg is claimed: written by the log or zeroed
	end  int64    // the log's write offset in seg
	busy bool     // a zeroing of [upto-chunk, upto) is in flight
	kick chan struct{}
	quit chan struct{}
	done chan struct{}
}

func (p *prealloc) init(l *Log) {
	p.l = l
	p.cond.L = &p.mu
	p.kick = make(chan struct{}, 1)
	p.quit = make(chan struct{})
	p.done = make(chan struct{})
}

func (p *prealloc) start() {
	if p.l.opts.PreallocChunk < 0 {
		close(p.done)
		return
	}
	go p.run()
	p.poke()
}

func (p *prealloc) stop() {
	close(p.quit)
	<-p.done
}

func (p *prealloc) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// reset makes s the tail, with [0, size) already claimed, once no zeroing is in flight.
func (p *prealloc) reset(s *segment, size int64) {
	p.mu.Lock()
	for p.busy {
		p.cond.Wait()
	}
	p.seg, p.upto = s, size
	if s != nil {
		p.end = s.end
	}
	p.mu.Unlock()
}

// claim reserves [.., end) of s for the log's own write.
func (p *prealloc) claim(s *segment, end int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s != p.seg {
		return
	}
	for p.busy && end > p.upto-p.l.opts.PreallocChunk {
		p.cond.Wait()
	}
	p.upto = max(p.upto, end)
	p.end = end
}

func (p *prealloc) run() {
	defer close(p.done)
	chunk, limit := p.l.opts.PreallocChunk, p.l.opts.SegmentSize
	for {
		select {
		case <-p.quit:
			return
		case <-p.kick:
		}
		for {
			p.mu.Lock()
			s := p.seg
			if s == nil || p.upto >= limit || p.upto-p.end >= 2*chunk {
				p.mu.Unlock()
				break
			}
			from := p.upto
			p.upto += chunk
			p.busy = true
			p.mu.Unlock()
			// Errors are ignored: this only saves the foreground work; a file closed under
			// us (the segment was deleted) fails harmlessly.
			err := zeroRange(s.f, from, from+chunk)
			if err == nil {
				err = fdatasync(s.f)
			}
			p.mu.Lock()
			p.busy = false
			p.cond.Broadcast()
			p.mu.Unlock()
			if err != nil {
				break
			}
			select {
			case <-p.quit:
				return
			default:
			}
		}
	}
}
