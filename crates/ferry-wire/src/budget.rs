//! A global memory budget for socket read buffers and fetched data.
//!
//! Fetched record batches travel as [`Bytes`] slices of the response frame
//! they arrived in, and every slice keeps the whole frame alive until the
//! produce request carrying it completes. Without a bound, a slow target
//! cluster makes the replicator buffer without limit. [`MemoryBudget`] is
//! that bound: readers take a [`Lease`] before reading, wait when the budget
//! is spent, and the bytes return to the budget only when the last slice of
//! the data is dropped ([`Lease::into_bytes`]).
//!
//! No async runtime is needed: waiting is plain [`std::task`] machinery (a
//! FIFO of wakers behind a mutex), so the futures work on any executor.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// A shared budget of bytes (cheap to clone; clones share the budget).
///
/// Grants are first come, first served: once a request waits, later requests
/// (including [`try_acquire`](Self::try_acquire)) queue behind it even if they
/// would fit, so a large request is never starved by a stream of small ones.
///
/// A request larger than the whole capacity is granted once nothing else is
/// held: refusing it forever would deadlock its caller, and the budget still
/// bounds memory to `max(capacity, largest single request)`. While it is
/// held, `used()` exceeds `capacity()` and every other request waits.
#[derive(Clone)]
pub struct MemoryBudget {
    shared: Arc<Shared>,
}

struct Shared {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bytes granted: held by leases, or granted to a waiter not yet polled.
    used: usize,
    /// Waiters in arrival order. Granted entries always form a prefix (grants
    /// go in order), and stay until their future is polled or dropped.
    queue: VecDeque<Waiter>,
    next_id: u64,
}

struct Waiter {
    id: u64,
    need: usize,
    waker: Option<Waker>,
    granted: bool,
}

impl MemoryBudget {
    /// A budget of `capacity` bytes. With capacity 0 every non-empty request
    /// is oversize, so requests run one at a time.
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                capacity,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The configured capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Bytes currently granted (may exceed the capacity while an oversize lease is held).
    pub fn used(&self) -> usize {
        self.shared.lock().used
    }

    /// Bytes that could still be granted before the capacity is reached.
    pub fn available(&self) -> usize {
        self.capacity().saturating_sub(self.used())
    }

    /// Number of [`acquire`](Self::acquire) futures waiting for bytes.
    pub fn waiters(&self) -> usize {
        self.shared
            .lock()
            .queue
            .iter()
            .filter(|w| !w.granted)
            .count()
    }

    /// Takes `n` bytes now, or returns `None` if they do not fit or others are
    /// already waiting (jumping the queue would starve them).
    pub fn try_acquire(&self, n: usize) -> Option<Lease> {
        if n == 0 {
            return Some(self.lease(0));
        }
        let mut state = self.shared.lock();
        if state.has_waiters() || !fits(self.shared.capacity, state.used, n) {
            return None;
        }
        state.used += n;
        drop(state);
        Some(self.lease(n))
    }

    /// Waits until `n` bytes can be granted, in FIFO order.
    ///
    /// Dropping the future before it completes gives back anything granted
    /// to it and lets the next waiter proceed.
    pub fn acquire(&self, n: usize) -> Acquire {
        Acquire {
            shared: Arc::clone(&self.shared),
            need: n,
            stage: Stage::Start,
        }
    }

    /// Waits (FIFO, like [`acquire`](Self::acquire)) for `min` bytes, then
    /// takes whatever more is free right away, up to `max` in all.
    ///
    /// For reads whose size the reader chooses: a fetch asks the broker for
    /// at most the lease's size, so fetches shrink as the budget fills
    /// instead of one reader waiting for a full-size grant.
    pub async fn acquire_up_to(&self, min: usize, max: usize) -> Lease {
        let mut lease = self.acquire(min).await;
        let want = max.saturating_sub(lease.size);
        let more = want.min(self.available());
        if let Some(mut extra) = self.try_acquire(more) {
            // Same budget: the extra bytes simply move into `lease`.
            lease.size += extra.size;
            extra.size = 0;
        }
        lease
    }

    fn lease(&self, size: usize) -> Lease {
        Lease {
            shared: Arc::clone(&self.shared),
            size,
        }
    }
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("MemoryBudget")
            .field("capacity", &self.shared.capacity)
            .field("used", &state.used)
            .field("queued", &state.queue.len())
            .finish()
    }
}

/// Whether `need` more bytes may be granted. `used == 0` admits oversize requests.
fn fits(capacity: usize, used: usize, need: usize) -> bool {
    used == 0 || capacity.checked_sub(used).is_some_and(|free| need <= free)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only changed by panic-free code, so a poisoned lock
        // (a panic elsewhere while holding it) still guards consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let wakers = {
            let mut state = self.lock();
            state.used = state.used.saturating_sub(n);
            state.grant(self.capacity)
        };
        // Woken outside the lock: a waker may poll (and lock) inline.
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl State {
    fn has_waiters(&self) -> bool {
        self.queue.iter().any(|w| !w.granted)
    }

    fn position(&self, id: u64) -> Option<usize> {
        // Ids are handed out in increasing order, so the queue is sorted by id.
        self.queue.binary_search_by_key(&id, |w| w.id).ok()
    }

    /// Grants waiters in order while the head fits; returns the wakers to call.
    /// Stops at the first waiter that does not fit so nobody overtakes it.
    fn grant(&mut self, capacity: usize) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for waiter in self.queue.iter_mut().filter(|w| !w.granted) {
            if !fits(capacity, self.used, waiter.need) {
                break;
            }
            self.used += waiter.need;
            waiter.granted = true;
            wakers.extend(waiter.waker.take());
        }
        wakers
    }
}

/// Future returned by [`MemoryBudget::acquire`].
///
/// Polling it again after it completed yields an empty lease instead of panicking.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire {
    shared: Arc<Shared>,
    need: usize,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Start,
    Queued(u64),
    Done,
}

impl Acquire {
    fn granted(&mut self, size: usize) -> Poll<Lease> {
        self.stage = Stage::Done;
        Poll::Ready(Lease {
            shared: Arc::clone(&self.shared),
            size,
        })
    }
}

impl Future for Acquire {
    type Output = Lease;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Lease> {
        let this = self.get_mut();
        let need = this.need;
        match this.stage {
            Stage::Done => this.granted(0),
            Stage::Start if need == 0 => this.granted(0),
            Stage::Start => {
                let mut state = this.shared.lock();
                if !state.has_waiters() && fits(this.shared.capacity, state.used, need) {
                    state.used += need;
                    drop(state);
                    return this.granted(need);
                }
                let id = state.next_id;
                state.next_id += 1;
                state.queue.push_back(Waiter {
                    id,
                    need,
                    waker: Some(cx.waker().clone()),
                    granted: false,
                });
                drop(state);
                this.stage = Stage::Queued(id);
                Poll::Pending
            }
            Stage::Queued(id) => {
                let mut state = this.shared.lock();
                let entry = state
                    .position(id)
                    .and_then(|i| state.queue.get_mut(i).map(|w| (i, w)));
                match entry {
                    Some((i, waiter)) if waiter.granted => {
                        state.queue.remove(i);
                        drop(state);
                        this.granted(need)
                    }
                    Some((_, waiter)) => {
                        // Keep the most recent waker: the task may have moved.
                        match &mut waiter.waker {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            slot => *slot = Some(cx.waker().clone()),
                        }
                        Poll::Pending
                    }
                    None => {
                        // Only this future removes its entry, so this cannot
                        // happen; queue again rather than hang or panic.
                        drop(state);
                        this.stage = Stage::Start;
                        Pin::new(this).poll(cx)
                    }
                }
            }
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        let Stage::Queued(id) = self.stage else {
            return;
        };
        let wakers = {
            let mut state = self.shared.lock();
            let removed = state.position(id).and_then(|i| state.queue.remove(i));
            if let Some(waiter) = removed.filter(|w| w.granted) {
                state.used = state.used.saturating_sub(waiter.need);
            }
            // Either bytes came back or the head of the queue changed: in
            // both cases someone behind may now fit, and must not miss it.
            state.grant(self.shared.capacity)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("need", &self.need)
            .field("stage", &self.stage)
            .finish()
    }
}

/// Bytes granted by a [`MemoryBudget`], given back when dropped.
#[must_use = "dropping a lease releases its bytes immediately"]
pub struct Lease {
    shared: Arc<Shared>,
    size: usize,
}

impl Lease {
    /// Bytes this lease holds.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Gives back everything above `keep` bytes (e.g. a read that used less
    /// than it reserved). Does nothing if the lease holds `keep` or less.
    pub fn release_excess(&mut self, keep: usize) {
        if let Some(excess) = self.size.checked_sub(keep).filter(|&e| e > 0) {
            self.size = keep;
            self.shared.release(excess);
        }
    }

    /// Wraps `buf` in [`Bytes`] that carry this lease: the budget stays
    /// charged until the last clone or slice of the result is dropped, which
    /// is what bounds data still referenced by in-flight produce requests.
    ///
    /// The charge is the lease's size, whatever `buf`'s length: shrink the
    /// lease first with [`release_excess`](Self::release_excess) if needed.
    pub fn into_bytes<T>(self, buf: T) -> Bytes
    where
        T: AsRef<[u8]> + Send + 'static,
    {
        Bytes::from_owner(Leased { buf, _lease: self })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.shared.release(self.size);
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("size", &self.size).finish()
    }
}

/// Owner behind [`Lease::into_bytes`]: the buffer plus the lease paying for it.
struct Leased<T> {
    buf: T,
    _lease: Lease,
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Leased<T> {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::thread;

    /// Minimal executor: poll, park until woken, repeat.
    fn block_on<F: Future>(fut: F) -> F::Output {
        struct Unpark(thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let mut fut = std::pin::pin!(fut);
        let waker = Waker::from(Arc::new(Unpark(thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            thread::park();
        }
    }

    /// A waker that logs its id each time it is woken.
    struct Recorder {
        id: usize,
        log: Arc<Mutex<Vec<usize>>>,
    }

    impl Wake for Recorder {
        fn wake(self: Arc<Self>) {
            self.log.lock().unwrap().push(self.id);
        }
    }

    struct Probe {
        log: Arc<Mutex<Vec<usize>>>,
    }

    impl Probe {
        fn new() -> Self {
            Self {
                log: Arc::default(),
            }
        }

        fn poll(&self, id: usize, fut: &mut Acquire) -> Poll<Lease> {
            let waker = Waker::from(Arc::new(Recorder {
                id,
                log: Arc::clone(&self.log),
            }));
            Pin::new(fut).poll(&mut Context::from_waker(&waker))
        }

        fn woken(&self) -> Vec<usize> {
            std::mem::take(&mut *self.log.lock().unwrap())
        }
    }

    #[test]
    fn acquire_up_to_takes_what_is_free_between_min_and_max() {
        let budget = MemoryBudget::new(100);
        let big = block_on(budget.acquire_up_to(10, 60));
        assert_eq!(big.size(), 60);
        let rest = block_on(budget.acquire_up_to(10, 60));
        assert_eq!(rest.size(), 40, "only 40 were free");
        assert_eq!(budget.available(), 0);
        drop(big);
        assert_eq!(budget.available(), 60);
        drop(rest);
        assert_eq!(budget.used(), 0, "the merged extra bytes are released too");
        // Waits for min when less is free.
        let held = budget.try_acquire(95).unwrap();
        let waiter = thread::spawn({
            let budget = budget.clone();
            move || block_on(budget.acquire_up_to(10, 50)).size()
        });
        thread::sleep(std::time::Duration::from_millis(20));
        drop(held);
        assert_eq!(waiter.join().unwrap(), 50);
    }

    #[test]
    fn try_acquire_accounts_and_releases_on_drop() {
        let budget = MemoryBudget::new(100);
        let a = budget.try_acquire(60).unwrap();
        let b = budget.try_acquire(40).unwrap();
        assert_eq!((budget.used(), budget.available()), (100, 0));
        assert!(budget.try_acquire(1).is_none());
        assert_eq!(budget.try_acquire(0).unwrap().size(), 0, "zero always fits");
        drop(a);
        assert_eq!(budget.used(), 40);
        let mut c = budget.try_acquire(60).unwrap();
        c.release_excess(10);
        assert_eq!((c.size(), budget.used()), (10, 50));
        c.release_excess(20);
        assert_eq!(c.size(), 10, "release_excess never grows a lease");
        drop((b, c));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn waiters_are_granted_and_woken_in_fifo_order() {
        let budget = MemoryBudget::new(10);
        let probe = Probe::new();
        let held = budget.try_acquire(10).unwrap();
        let mut a = budget.acquire(8);
        let mut b = budget.acquire(5);
        let mut c = budget.acquire(1);
        assert!(probe.poll(0, &mut a).is_pending());
        assert!(probe.poll(1, &mut b).is_pending());
        assert!(probe.poll(2, &mut c).is_pending());
        assert_eq!(budget.waiters(), 3);

        drop(held);
        // a fits; b does not, and c, which would fit, must not overtake b.
        assert_eq!(probe.woken(), [0]);
        assert_eq!(budget.used(), 8);
        assert!(budget.try_acquire(1).is_none(), "no barging past waiters");
        let a = match probe.poll(0, &mut a) {
            Poll::Ready(lease) => lease,
            Poll::Pending => panic!("a was woken but not granted"),
        };
        assert!(probe.poll(2, &mut c).is_pending());

        drop(a);
        assert_eq!(probe.woken(), [1, 2], "b before c");
        assert_eq!(budget.used(), 6);
        let (Poll::Ready(b), Poll::Ready(c)) = (probe.poll(1, &mut b), probe.poll(2, &mut c))
        else {
            panic!("b and c granted");
        };
        assert_eq!((b.size(), c.size(), budget.waiters()), (5, 1, 0));
    }

    #[test]
    fn a_large_request_is_not_starved_by_small_ones() {
        let budget = MemoryBudget::new(100);
        let probe = Probe::new();
        let small = budget.try_acquire(30).unwrap();
        let mut large = budget.acquire(90);
        assert!(probe.poll(0, &mut large).is_pending());
        // 70 bytes are free, yet small requests queue behind the large one.
        assert!(budget.try_acquire(10).is_none());
        let mut later = budget.acquire(10);
        assert!(probe.poll(1, &mut later).is_pending());
        drop(small);
        assert_eq!(
            probe.woken(),
            [0, 1],
            "both fit once the small lease is gone"
        );
        let (Poll::Ready(large), Poll::Ready(later)) =
            (probe.poll(0, &mut large), probe.poll(1, &mut later))
        else {
            panic!("both granted");
        };
        assert_eq!((large.size(), later.size(), budget.used()), (90, 10, 100));
    }

    #[test]
    fn cancelled_waiters_do_not_leak_budget_or_wakeups() {
        let budget = MemoryBudget::new(10);
        let probe = Probe::new();

        // Cancelled while waiting at the head: the next waiter is let through
        // at once, without waiting for some unrelated release.
        let held = budget.try_acquire(6).unwrap();
        let mut head = budget.acquire(8);
        let mut next = budget.acquire(2);
        assert!(probe.poll(0, &mut head).is_pending());
        assert!(probe.poll(1, &mut next).is_pending());
        drop(head);
        assert_eq!(probe.woken(), [1]);
        assert!(probe.poll(1, &mut next).is_ready());
        drop(next);
        drop(held);
        assert_eq!((budget.used(), budget.waiters()), (0, 0));

        // Cancelled after being granted but before being polled: the bytes go
        // back and pass to the next waiter.
        let held = budget.try_acquire(10).unwrap();
        let mut granted = budget.acquire(10);
        let mut next = budget.acquire(4);
        assert!(probe.poll(0, &mut granted).is_pending());
        assert!(probe.poll(1, &mut next).is_pending());
        drop(held);
        assert_eq!(probe.woken(), [0]);
        assert_eq!(budget.used(), 10, "granted to the head");
        drop(granted);
        assert_eq!(probe.woken(), [1]);
        assert_eq!(budget.used(), 4);
        assert!(probe.poll(1, &mut next).is_ready());
        assert_eq!(budget.used(), 0, "the ready lease was dropped");
        assert_eq!(budget.waiters(), 0);

        // Never polled: nothing to undo.
        drop(budget.acquire(5));
        assert_eq!((budget.used(), budget.waiters()), (0, 0));
    }

    #[test]
    fn oversize_requests_run_alone() {
        let budget = MemoryBudget::new(10);
        let probe = Probe::new();
        let big = budget.try_acquire(50).expect("oversize granted when idle");
        assert_eq!((budget.used(), budget.available()), (50, 0));
        assert!(budget.try_acquire(1).is_none());
        drop(big);

        let small = budget.try_acquire(1).unwrap();
        assert!(
            budget.try_acquire(50).is_none(),
            "not while anything is held"
        );
        let mut big = budget.acquire(50);
        assert!(probe.poll(0, &mut big).is_pending());
        drop(small);
        assert_eq!(probe.woken(), [0]);
        let Poll::Ready(mut big) = probe.poll(0, &mut big) else {
            panic!("oversize granted once idle");
        };
        big.release_excess(4);
        assert_eq!(budget.used(), 4);
        assert!(budget.try_acquire(6).is_some());

        let zero = MemoryBudget::new(0);
        let one = zero.try_acquire(1).unwrap();
        assert!(zero.try_acquire(1).is_none(), "capacity 0: one at a time");
        drop(one);
        assert!(zero.try_acquire(1).is_some());
    }

    #[test]
    fn polling_after_completion_yields_an_empty_lease() {
        let budget = MemoryBudget::new(10);
        let probe = Probe::new();
        let mut fut = budget.acquire(7);
        let Poll::Ready(lease) = probe.poll(0, &mut fut) else {
            panic!("fits");
        };
        let Poll::Ready(again) = probe.poll(0, &mut fut) else {
            panic!("no hang");
        };
        assert_eq!((lease.size(), again.size(), budget.used()), (7, 0, 7));
    }

    #[test]
    fn bytes_slices_keep_the_budget_charged_until_the_last_is_dropped() {
        let budget = MemoryBudget::new(1000);
        let lease = budget.try_acquire(100).unwrap();
        let bytes = lease.into_bytes(vec![7u8; 100]);
        let slice = bytes.slice(10..20);
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(budget.used(), 100);
        drop(clone);
        assert_eq!(budget.used(), 100);
        // Dropped on another thread, as a completed produce would.
        thread::spawn(move || assert_eq!(&slice[..], &[7; 10]))
            .join()
            .unwrap();
        assert_eq!(budget.used(), 0);

        let lease = budget.try_acquire(3).unwrap();
        let bytes = lease.into_bytes(bytes::BytesMut::from(&b"abc"[..]));
        assert_eq!(&bytes[..], b"abc");
        assert_eq!(budget.used(), 3);
        drop(bytes);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn accounting_holds_under_many_threads() {
        const CAPACITY: usize = 1000;
        let budget = MemoryBudget::new(CAPACITY);
        // Bytes the test itself believes it holds: must never exceed capacity.
        let held = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let budget = budget.clone();
                let held = Arc::clone(&held);
                thread::spawn(move || {
                    let mut rng = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                    let mut next = move |bound: usize| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        usize::try_from(rng % u64::try_from(bound).unwrap()).unwrap()
                    };
                    let mut mine: Vec<(Bytes, usize)> = Vec::new();
                    for round in 0..2000 {
                        let last = round == 1999;
                        let n = 1 + next(300);
                        // Block only while holding nothing, or threads could
                        // deadlock holding what the others wait for.
                        let lease = if mine.is_empty() {
                            Some(block_on(budget.acquire(n)))
                        } else {
                            budget.try_acquire(n)
                        };
                        if let Some(mut lease) = lease {
                            if next(4) == 0 {
                                lease.release_excess(n / 2);
                            }
                            let size = lease.size();
                            let now = held.fetch_add(size, Ordering::SeqCst) + size;
                            let used = budget.used();
                            assert!(now <= CAPACITY, "{now} bytes granted, used {used}");
                            assert!(used <= CAPACITY);
                            // Keep only a slice: it alone must hold the lease.
                            let bytes = lease.into_bytes(vec![0u8; size]);
                            mine.push((bytes.slice(size / 2..), size));
                        }
                        if mine.len() > 3 || next(3) == 0 || last {
                            for (slice, size) in std::mem::take(&mut mine) {
                                // Uncounted before the budget gets the bytes back.
                                held.fetch_sub(size, Ordering::SeqCst);
                                drop(slice);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!((budget.used(), budget.waiters()), (0, 0));
    }

    #[derive(Debug, Clone)]
    enum Op {
        TryAcquire(usize),
        Acquire(usize),
        DropFuture(usize),
        DropHeld(usize),
        ReleaseExcess(usize, usize),
        IntoBytesSlice(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let n = 0usize..150;
        prop_oneof![
            n.clone().prop_map(Op::TryAcquire),
            n.clone().prop_map(Op::Acquire),
            any::<usize>().prop_map(Op::DropFuture),
            any::<usize>().prop_map(Op::DropHeld),
            (any::<usize>(), n).prop_map(|(i, keep)| Op::ReleaseExcess(i, keep)),
            any::<usize>().prop_map(Op::IntoBytesSlice),
        ]
    }

    enum Held {
        Lease(Lease),
        /// A slice that alone keeps a lease of `size` bytes alive.
        Slice {
            _slice: Bytes,
            size: usize,
        },
    }

    impl Held {
        fn size(&self) -> usize {
            match self {
                Held::Lease(l) => l.size(),
                Held::Slice { size, .. } => *size,
            }
        }
    }

    proptest! {
        /// Random interleavings against a model: accounting is exact, the head
        /// waiter only waits when it cannot fit, and a future is woken exactly
        /// when it has been granted.
        #[test]
        fn budget_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
            const CAPACITY: usize = 100;
            let budget = MemoryBudget::new(CAPACITY);
            let probe = Probe::new();
            let mut held: Vec<Held> = Vec::new();
            let mut pending: Vec<(usize, Acquire)> = Vec::new();
            for (id, op) in ops.into_iter().enumerate() {
                match op {
                    Op::TryAcquire(n) => {
                        let lease = budget.try_acquire(n);
                        prop_assert!(
                            lease.is_none() || n == 0 || pending.is_empty(),
                            "try_acquire overtook a waiter"
                        );
                        held.extend(lease.map(Held::Lease));
                    }
                    Op::Acquire(n) => {
                        let mut fut = budget.acquire(n);
                        match probe.poll(id, &mut fut) {
                            Poll::Ready(lease) => held.push(Held::Lease(lease)),
                            Poll::Pending => pending.push((id, fut)),
                        }
                    }
                    Op::DropFuture(i) if !pending.is_empty() => {
                        drop(pending.remove(i % pending.len()));
                    }
                    Op::DropHeld(i) if !held.is_empty() => {
                        held.remove(i % held.len());
                    }
                    Op::ReleaseExcess(i, keep) if !held.is_empty() => {
                        let len = held.len();
                        if let Held::Lease(lease) = &mut held[i % len] {
                            lease.release_excess(keep);
                        }
                    }
                    Op::IntoBytesSlice(i) if !held.is_empty() => {
                        let i = i % held.len();
                        if let Held::Lease(lease) = held.swap_remove(i) {
                            let size = lease.size();
                            let bytes = lease.into_bytes(vec![0u8; 1]);
                            held.push(Held::Slice { _slice: bytes.slice(..1), size });
                        }
                    }
                    _ => {}
                }
                let woken = probe.woken();
                let mut still = Vec::new();
                for (fid, mut fut) in pending.drain(..) {
                    match probe.poll(fid, &mut fut) {
                        Poll::Ready(lease) => {
                            prop_assert!(woken.contains(&fid), "granted {fid} was not woken");
                            held.push(Held::Lease(lease));
                        }
                        Poll::Pending => {
                            prop_assert!(!woken.contains(&fid), "{fid} woken for nothing");
                            still.push((fid, fut));
                        }
                    }
                }
                pending = still;
                prop_assert!(probe.woken().is_empty(), "polling granted nobody");

                let used = budget.used();
                prop_assert_eq!(used, held.iter().map(Held::size).sum::<usize>());
                prop_assert_eq!(budget.waiters(), pending.len());
                prop_assert!(
                    used <= CAPACITY || held.iter().filter(|h| h.size() > 0).count() == 1,
                    "over capacity only for a lone oversize lease"
                );
                if let Some((_, head)) = pending.first() {
                    prop_assert!(!fits(CAPACITY, used, head.need), "head waits needlessly");
                }
            }
            drop(pending);
            drop(held);
            prop_assert_eq!((budget.used(), budget.waiters()), (0, 0));
        }
    }
}
