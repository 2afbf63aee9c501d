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

/// One thread running `poll()` over every socket any session is waiting on.
///
/// Each host's work is an ordinary `async` function: it calls libssh2 in non-blocking mode and, on
/// `EAGAIN`, suspends in ``waitForSocket(_:events:deadline:)`` until the reactor thread sees the socket
/// ready or the deadline pass. So one process drives hundreds of hosts with one extra thread.
///
/// The reactor does not change the process's `SIGPIPE` disposition: libssh2 sends with `MSG_NOSIGNAL`
/// and the transport never writes to sockets itself. Callers that write to pipes should ignore `SIGPIPE`.
public final class SSHReactor: Sendable {
    let core: ReactorCore

    /// Starts the poll thread. Throws if libssh2 cannot be initialised or no wake-up pipe can be made.
    public init() throws {
        guard LibSSH2Library.initResult == 0 else {
            throw ReactorError.libraryInitFailed(code: LibSSH2Library.initResult)
        }
        Self.raiseOpenFileLimit()
        core = try ReactorCore()
        let core = self.core
        let thread = Thread { core.run() }
        thread.name = "SSHReactor"
        thread.start()
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

    /// Stops the poll thread; every pending wait fails with `CancellationError`. Idempotent.
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

    public var description: String {
        switch self {
        case .libraryInitFailed(let code): "libssh2_init failed with code \(code)"
        case .wakePipeFailed(let e): "could not create the reactor's wake-up pipe: \(String(cString: strerror(e)))"
        }
    }
}

/// One descriptor and the `poll` events to wait for on it.
struct PollRequest: Sendable {
    var fd: Int32
    var events: Int16
}

/// The shared state of the reactor; the thread and the waiting tasks meet here under one lock.
final class ReactorCore: Sendable {
    private struct Waiter {
        var fds: [PollRequest]
        var deadline: ContinuousClock.Instant?
        var continuation: CheckedContinuation<SocketWaitOutcome, any Error>
    }

    private struct State {
        var waiters: [UInt64: Waiter] = [:]
        /// Ids whose task was cancelled before the waiter was registered.
        var cancelledEarly: Set<UInt64> = []
        var nextID: UInt64 = 0
        var stopped = false
    }

    private let state = Mutex(State())
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
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1) // a full pipe already means "wake up"
    }

    func shutdown() {
        let pending: [CheckedContinuation<SocketWaitOutcome, any Error>] = state.withLock { s in
            if s.stopped { return [] }
            s.stopped = true
            let all = s.waiters.values.map(\.continuation)
            s.waiters.removeAll()
            return all
        }
        for c in pending { c.resume(throwing: CancellationError()) }
        wake()
    }

    func wait(
        fds: [PollRequest], deadline: ContinuousClock.Instant?, cancellable: Bool
    ) async throws -> SocketWaitOutcome {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        let register: (CheckedContinuation<SocketWaitOutcome, any Error>) -> Void = { continuation in
            let refusal: (any Error)? = self.state.withLock { s in
                if s.stopped { return CancellationError() }
                if s.cancelledEarly.remove(id) != nil { return CancellationError() }
                s.waiters[id] = Waiter(fds: fds, deadline: deadline, continuation: continuation)
                return nil
            }
            if let refusal { continuation.resume(throwing: refusal) } else { self.wake() }
        }
        guard cancellable else {
            return try await withCheckedThrowingContinuation(register)
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation(register)
        } onCancel: {
            let waiter = self.state.withLock { s -> Waiter? in
                if let w = s.waiters.removeValue(forKey: id) { return w }
                s.cancelledEarly.insert(id)
                return nil
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// The poll loop; runs on the reactor's own thread until ``shutdown()``.
    func run() {
        var pollFDs: [pollfd] = []
        /// Each waiter's id and the range of its entries in `pollFDs`.
        var ids: [(id: UInt64, range: Range<Int>)] = []
        while true {
            pollFDs.removeAll(keepingCapacity: true)
            ids.removeAll(keepingCapacity: true)
            pollFDs.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            let (stopped, nearest) = state.withLock { s -> (Bool, ContinuousClock.Instant?) in
                var nearest: ContinuousClock.Instant?
                for (id, w) in s.waiters {
                    let start = pollFDs.count
                    for request in w.fds { pollFDs.append(pollfd(fd: request.fd, events: request.events, revents: 0)) }
                    ids.append((id, start..<pollFDs.count))
                    if let d = w.deadline, nearest.map({ d < $0 }) ?? true { nearest = d }
                }
                return (s.stopped, nearest)
            }
            if stopped { break }
            var timeoutMS: Int32 = -1
            if let nearest {
                let remaining = ContinuousClock.now.duration(to: nearest)
                let ms = remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000
                // Round up so a wait never wakes just before its deadline and spins.
                timeoutMS = ms <= 0 ? 0 : Int32(clamping: ms + 1)
            }
            let n = poll(&pollFDs, nfds_t(pollFDs.count), timeoutMS)
            if n < 0 && errno != EINTR { break }
            if pollFDs[0].revents != 0 {
                var sink = [UInt8](repeating: 0, count: 256)
                while read(wakeRead, &sink, sink.count) > 0 {}
            }
            let now = ContinuousClock.now
            var toResume: [(CheckedContinuation<SocketWaitOutcome, any Error>, SocketWaitOutcome)] = []
            state.withLock { s in
                for (id, range) in ids {
                    guard let w = s.waiters[id] else { continue }
                    if range.contains(where: { pollFDs[$0].revents != 0 }) {
                        s.waiters[id] = nil
                        toResume.append((w.continuation, .ready))
                    } else if let d = w.deadline, d <= now {
                        s.waiters[id] = nil
                        toResume.append((w.continuation, .timedOut))
                    }
                }
            }
            for (c, outcome) in toResume { c.resume(returning: outcome) }
        }
    }

    deinit {
        // Closed here, not when the loop ends, so a late `wake()` never writes to a reused descriptor.
        close(wakeRead)
        close(wakeWrite)
    }
}
