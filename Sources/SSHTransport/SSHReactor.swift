import CEpoll
import CLibSSH2
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Calls `libssh2_init` exactly once per process; a `static let` initialiser is run once, thread-safely.
enum LibSSH2Library {
    static let initResult: Int32 = libssh2_init(0)
}

/// What a wait for socket readiness ended with.
enum SocketWaitOutcome: Sendable {
    /// The socket is ready (or has an error/hang-up the next libssh2 call will report).
    case ready
    /// The deadline passed first.
    case timedOut
}

/// One thread running `epoll_wait` over every socket any session is waiting on.
///
/// Each host's work is an ordinary `async` function: it calls libssh2 in non-blocking mode and, on
/// `EAGAIN`, suspends in ``waitForSocket(_:events:deadline:)`` until the reactor thread sees the socket
/// ready or the deadline pass. So one process drives hundreds of hosts with one extra thread.
///
/// The reactor does not change the process's `SIGPIPE` disposition: libssh2 sends with `MSG_NOSIGNAL`
/// and the transport never writes to sockets itself. Callers that write to pipes should ignore `SIGPIPE`.
public final class SSHReactor: Sendable {
    let core: ReactorCore

    /// Starts the reactor thread. Throws if libssh2 cannot be initialised or no wake-up pipe or epoll
    /// instance can be made.
    public init() throws {
        guard LibSSH2Library.initResult == 0 else {
            throw ReactorError.libraryInitFailed(code: LibSSH2Library.initResult)
        }
        Self.raiseOpenFileLimit()
        core = try ReactorCore()
        let core = self.core
        Thread {
            // Named for top -H and perf; Foundation's Thread.name does not reach the kernel on Linux.
            _ = pthread_setname_np(pthread_self(), "SSHReactor")
            core.run()
        }.start()
    }

    deinit {
        core.shutdown()
    }

    /// Raises the soft open-file limit to the hard one, once per process (as Go's runtime does): each
    /// host holds a socket (two behind a gateway), and a soft limit of 1,024 would otherwise cap a
    /// run at a few hundred hosts at once. Running out still fails that host with a clear error.
    private static let openFileLimitRaised: Bool = {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else {
            return false
        }
        limit.rlim_cur = limit.rlim_max
        return setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0
    }()

    private static func raiseOpenFileLimit() {
        _ = openFileLimitRaised
    }

    /// Stops the reactor thread; every pending wait fails with `CancellationError`. Idempotent.
    public func shutdown() {
        core.shutdown()
    }

    /// Suspends until `fd` is ready for `events` (POLLIN/POLLOUT), the deadline passes, or the task is
    /// cancelled (then throws `CancellationError`, unless `cancellable` is false, as used for clean-up).
    func waitForSocket(
        _ fd: Int32, events: Int16, deadline: ContinuousClock.Instant?, cancellable: Bool = true
    ) async throws -> SocketWaitOutcome {
        try await core.wait(fds: [PollRequest(fd: fd, events: events)], deadline: deadline, cancellable: cancellable)
    }

    /// Suspends until any of `requests` is ready, or the deadline passes (a gateway's pump waits on its
    /// own socket and every tunnel's local end at once).
    func waitForAny(
        _ requests: [PollRequest], deadline: ContinuousClock.Instant?, cancellable: Bool = true
    ) async throws -> SocketWaitOutcome {
        try await core.wait(fds: requests, deadline: deadline, cancellable: cancellable)
    }
}

/// Why a reactor could not start.
public enum ReactorError: Error, CustomStringConvertible {
    /// `libssh2_init` returned an error.
    case libraryInitFailed(code: Int32)
    /// The wake-up pipe could not be created.
    case wakePipeFailed(errno: Int32)
    /// The epoll instance could not be created.
    case epollFailed(errno: Int32)

    public var description: String {
        switch self {
        case .libraryInitFailed(let code): "libssh2_init failed with code \(code)"
        case .wakePipeFailed(let e): "could not create the reactor's wake-up pipe: \(String(cString: strerror(e)))"
        case .epollFailed(let e): "could not create the reactor's epoll instance: \(String(cString: strerror(e)))"
        }
    }
}

/// One descriptor and the `poll` events to wait for on it.
struct PollRequest: Sendable {
    var fd: Int32
    var events: Int16
}

/// The shared state of the reactor; the thread and the waiting tasks meet here under one lock.
///
/// It is built on epoll, not `poll`: a waiting task arms its descriptors itself (`EPOLLONESHOT`, so
/// an event wakes the reactor once per wait), and the reactor thread is woken through the pipe only
/// when a wait's deadline is earlier than the one it sleeps towards. With `poll`, every wait had to
/// wake the thread to rebuild its descriptor list and poll again (a pipe write and read, an extra
/// poll and a task switch per wait): on 200 loopback hosts the reactor thread was 27% of the
/// client's CPU, and this halves the process's task switches.
final class ReactorCore: Sendable {
    /// Unsafe, not checked, continuations: each is resumed exactly once, by whoever removes its
    /// waiter from the state under the lock (the checked kind cost an allocation per wait).
    private typealias Continuation = UnsafeContinuation<SocketWaitOutcome, any Error>

    private struct Waiter {
        var fds: [PollRequest]
        var continuation: Continuation
    }

    /// The waiters on one descriptor (in practice one; more go in `more`, which then allocates).
    private struct FDWaiters {
        var first: UInt64
        var more: [UInt64] = []
        var events: UInt32
    }

    private enum Registration {
        /// Stopped, or the task was cancelled before it could wait.
        case refused
        /// epoll refused a descriptor (closed): resume at once, as `poll` would report `POLLNVAL`.
        case readyNow
        case waiting(wakeReactor: Bool)
    }

    private struct State {
        var waiters: [UInt64: Waiter] = [:]
        /// Deadlines of the waiters that have one (kept apart so finding the nearest copies nothing).
        var deadlines: [UInt64: ContinuousClock.Instant] = [:]
        /// Which waiters wait on each descriptor, and the events they want.
        var byFD: [Int32: FDWaiters] = [:]
        /// Ids whose task was cancelled before the waiter was registered.
        var cancelledEarly: Set<UInt64> = []
        var stopped = false
        /// The deadline the reactor thread sleeps towards (nil: none, it waits for an event).
        var sleepUntil: ContinuousClock.Instant?

        mutating func remove(_ id: UInt64) -> Waiter? {
            guard let waiter = waiters.removeValue(forKey: id) else { return nil }
            deadlines[id] = nil
            for request in waiter.fds {
                guard var entry = byFD[request.fd] else { continue }
                if entry.first == id {
                    if entry.more.isEmpty {
                        byFD[request.fd] = nil
                        continue
                    }
                    entry.first = entry.more.removeFirst()
                } else {
                    entry.more.removeAll { $0 == id }
                }
                byFD[request.fd] = entry
            }
            return waiter
        }

        /// The nearest deadline, which the reactor will sleep towards.
        mutating func planSleep() -> ContinuousClock.Instant? {
            var nearest: ContinuousClock.Instant?
            for d in deadlines.values where nearest.map({ d < $0 }) ?? true { nearest = d }
            sleepUntil = nearest
            return nearest
        }
    }

    private let state = Mutex(State())
    private let nextID = Atomic<UInt64>(0)
    private let epollFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ReactorError.wakePipeFailed(errno: errno) }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        epollFD = Epoll.create()
        var event = EpollEvent(events: Epoll.input, fd: wakeRead)
        guard epollFD >= 0, Epoll.control(epollFD, Epoll.add, wakeRead, &event) == 0 else {
            let failure = errno
            if epollFD >= 0 { close(epollFD) }
            close(wakeRead)
            close(wakeWrite)
            throw ReactorError.epollFailed(errno: failure)
        }
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1) // a full pipe already means "wake up"
    }

    func shutdown() {
        let pending: [Continuation] = state.withLock { s in
            if s.stopped { return [] }
            s.stopped = true
            let all = s.waiters.values.map(\.continuation)
            s.waiters.removeAll()
            s.deadlines.removeAll()
            s.byFD.removeAll()
            return all
        }
        for c in pending { c.resume(throwing: CancellationError()) }
        wake()
    }

    /// Arms `fd` for `events` once (`EPOLLONESHOT`): modified if epoll already knows the descriptor,
    /// added if not. False if epoll refuses it (a closed descriptor); the waiter is then resumed at
    /// once, as `poll` would report `POLLNVAL`, and the next libssh2 call reports the error.
    private func arm(_ fd: Int32, events: UInt32) -> Bool {
        var event = EpollEvent(events: events | Epoll.oneShot, fd: fd)
        if Epoll.control(epollFD, Epoll.modify, fd, &event) == 0 { return true }
        guard errno == ENOENT else { return false }
        return Epoll.control(epollFD, Epoll.add, fd, &event) == 0
    }

    func wait(
        fds: [PollRequest], deadline: ContinuousClock.Instant?, cancellable: Bool
    ) async throws -> SocketWaitOutcome {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let register: (Continuation) -> Void = { continuation in
            let registration = self.state.withLock { s -> Registration in
                if s.stopped || s.cancelledEarly.remove(id) != nil { return .refused }
                s.waiters[id] = Waiter(fds: fds, continuation: continuation)
                // Armed under the lock, so two waiters on one descriptor never arm a stale union.
                for request in fds {
                    let events = UInt32(UInt16(bitPattern: request.events))
                    var entry = s.byFD[request.fd] ?? FDWaiters(first: id, events: 0)
                    if entry.first != id { entry.more.append(id) }
                    entry.events |= events
                    s.byFD[request.fd] = entry
                    if !self.arm(request.fd, events: entry.events) {
                        _ = s.remove(id)
                        return .readyNow
                    }
                }
                guard let deadline else { return .waiting(wakeReactor: false) }
                s.deadlines[id] = deadline
                // The reactor sleeps towards `sleepUntil`: wake it only if this deadline is sooner.
                guard s.sleepUntil.map({ deadline < $0 }) ?? true else { return .waiting(wakeReactor: false) }
                s.sleepUntil = deadline
                return .waiting(wakeReactor: true)
            }
            switch registration {
            case .refused: continuation.resume(throwing: CancellationError())
            case .readyNow: continuation.resume(returning: .ready)
            case .waiting(let wakeReactor): if wakeReactor { self.wake() }
            }
        }
        guard cancellable else {
            return try await withUnsafeThrowingContinuation(register)
        }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation(register)
        } onCancel: {
            let waiter = self.state.withLock { s -> Waiter? in
                if let w = s.remove(id) { return w }
                s.cancelledEarly.insert(id)
                return nil
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// The event loop; runs on the reactor's own thread until ``shutdown()``.
    func run() {
        var events = [EpollEvent](repeating: EpollEvent(events: 0, fd: -1), count: 64)
        var toResume: [(Continuation, SocketWaitOutcome)] = []
        var (stopped, nearest) = state.withLock { s in (s.stopped, s.planSleep()) }
        while !stopped {
            var timeoutMS: Int32 = -1
            if let nearest {
                let remaining = ContinuousClock.now.duration(to: nearest)
                let ms = remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000
                // Round up so a wait never wakes just before its deadline and spins.
                timeoutMS = ms <= 0 ? 0 : Int32(clamping: ms + 1)
            }
            let n = events.withUnsafeMutableBufferPointer {
                Epoll.wait(epollFD, $0.baseAddress, Int32($0.count), timeoutMS)
            }
            if n < 0 && errno != EINTR { break }
            var drainWakePipe = false
            let now = ContinuousClock.now
            // One lock a turn: hand out what is ready or late, then plan the next sleep.
            (stopped, nearest) = state.withLock { s in
                for event in events.prefix(Int(max(n, 0))) {
                    let fd = event.fd
                    if fd == wakeRead {
                        drainWakePipe = true
                        continue
                    }
                    // Every waiter on the descriptor wakes (a spurious wake only means "try again").
                    guard let entry = s.byFD[fd] else { continue }
                    if let w = s.remove(entry.first) { toResume.append((w.continuation, .ready)) }
                    for id in entry.more {
                        if let w = s.remove(id) { toResume.append((w.continuation, .ready)) }
                    }
                }
                if let nearest, nearest <= now {
                    for (id, d) in s.deadlines where d <= now {
                        if let w = s.remove(id) { toResume.append((w.continuation, .timedOut)) }
                    }
                }
                return (s.stopped, s.planSleep())
            }
            if drainWakePipe {
                var sink = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
                while withUnsafeMutableBytes(of: &sink, { read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
            }
            for (c, outcome) in toResume { c.resume(returning: outcome) }
            toResume.removeAll(keepingCapacity: true)
        }
    }

    deinit {
        // Closed here, not when the loop ends, so a late `wake()` never writes to a reused descriptor.
        close(epollFD)
        close(wakeRead)
        close(wakeWrite)
    }
}

/// `struct epoll_event` from the C header; the transport only ever stores a descriptor in its data.
typealias EpollEvent = epoll_event

extension EpollEvent {
    init(events: UInt32, fd: Int32) {
        self.init()
        self.events = events
        self.data.fd = fd
    }

    var fd: Int32 { data.fd }
}

/// The epoll calls. Event bits are poll's (`EPOLLIN` == `POLLIN` and so on), so
/// `PollRequest.events` pass through.
enum Epoll {
    static let input = EPOLLIN.rawValue
    static let oneShot = EPOLLONESHOT.rawValue
    static let add = EPOLL_CTL_ADD
    static let modify = EPOLL_CTL_MOD

    static func create() -> Int32 { epoll_create1(Int32(EPOLL_CLOEXEC)) }

    static func control(_ epollFD: Int32, _ operation: Int32, _ fd: Int32, _ event: inout EpollEvent) -> Int32 {
        epoll_ctl(epollFD, operation, fd, &event)
    }

    static func wait(_ epollFD: Int32, _ events: UnsafeMutablePointer<EpollEvent>?, _ count: Int32, _ timeoutMS: Int32)
        -> Int32
    {
        epoll_wait(epollFD, events, count, timeoutMS)
    }
}
