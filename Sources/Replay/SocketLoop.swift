import CEpoll
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A socket driven by a `SocketLoop`; called only on the loop's thread.
protocol SocketLoopClient: AnyObject {
    /// The socket reported `events` (epoll bits).
    func socketReady(events: UInt32)
    /// Acts on a deadline that has passed by `now`; returns the next one it waits for (`.max`: none).
    func checkDeadline(now: Int64) -> Int64
}

/// One thread in `epoll_wait` over plain sockets, with no channel pipeline between a socket and
/// the code that reads it. Replay's plain-http connections run here: a request and its response
/// then cost a write, a read and the framing, where NIO's pipeline added about 5 µs of its own
/// (docs/benchmarks.md).
///
/// `@unchecked Sendable`: `tasks` and `threadID` are the only state other threads touch (a Mutex and
/// an Atomic); everything else is touched only on the loop's thread, which `execute` hops to.
final class SocketLoop: @unchecked Sendable {
    private let epollFD: Int32
    private let wakeFD: Int32
    private let tasks = Mutex<[@Sendable () -> Void]>([])
    private let threadID = Atomic<UInt>(0)

    // Loop-confined.
    private var clients: [(generation: UInt32, client: SocketLoopClient)?] = []
    private var generation: UInt32 = 0
    private var earliestDeadline: Int64 = .max
    /// Where every socket on this loop reads into; a client consumes the bytes before returning.
    let readBuffer: UnsafeMutableRawBufferPointer

    static let readable = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
    static let writable = EPOLLOUT.rawValue

    private let name: String

    /// Starts the loop's thread; throws when the process has no descriptor left for its epoll
    /// instance or wake-up eventfd.
    init(name: String) throws(SocketLoopError) {
        self.name = name
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw SocketLoopError(errno: errno) }
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        guard wakeFD >= 0 else {
            let code = errno
            close(epollFD)
            throw SocketLoopError(errno: code)
        }
        readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = UInt64(UInt32.max)
        epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event)
        Thread { [self] in run() }.start()
    }

    var inLoop: Bool { threadID.load(ordering: .acquiring) == UInt(pthread_self()) }

    /// Runs `task` on the loop's thread (after what it is doing now).
    func execute(_ task: @escaping @Sendable () -> Void) {
        let first = tasks.withLock { tasks in
            tasks.append(task)
            return tasks.count == 1
        }
        // A loop that finds tasks waiting runs them before it waits again: wake it only for the first.
        if first {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    // MARK: On the loop's thread

    /// Watches `fd` for `events`; returns false (errno set) when epoll refuses it.
    func register(_ fd: Int32, events: UInt32, client: SocketLoopClient) -> Bool {
        generation &+= 1
        var event = epoll_event()
        event.events = events
        event.data.u64 = UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else { return false }
        let index = Int(fd)
        if index >= clients.count { clients.append(contentsOf: repeatElement(nil, count: index + 1 - clients.count)) }
        clients[index] = (generation, client)
        return true
    }

    func modify(_ fd: Int32, events: UInt32) {
        guard Int(fd) < clients.count, let entry = clients[Int(fd)] else { return }
        var event = epoll_event()
        event.events = events
        event.data.u64 = UInt64(entry.generation) << 32 | UInt64(UInt32(bitPattern: fd))
        epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event)
    }

    /// Stops watching `fd` and closes it.
    func closeSocket(_ fd: Int32) {
        if Int(fd) < clients.count { clients[Int(fd)] = nil }
        epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
        close(fd)
    }

    /// The loop calls `checkDeadline` on its clients once `deadline` passes.
    func noteDeadline(_ deadline: Int64) {
        if deadline < earliestDeadline { earliestDeadline = deadline }
    }

    private func run() {
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        // Named for top -H and perf; Foundation's Thread.name does not reach the kernel on Linux.
        _ = pthread_setname_np(pthread_self(), name)
        let capacity: Int32 = 64
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Int(capacity))
        var taken: [@Sendable () -> Void] = []
        while true {
            var timeout: Int32 = -1
            if earliestDeadline != .max {
                let wait = (earliestDeadline - monotonicNanoseconds() + 999_999) / 1_000_000
                timeout = Int32(max(0, min(wait, 1000)))
            }
            let count = epoll_wait(epollFD, events, capacity, timeout)
            for index in 0..<Int(max(0, count)) {
                let event = events[index]
                let key = event.data.u64
                guard key != UInt64(UInt32.max) else {
                    var sink: UInt64 = 0
                    _ = read(wakeFD, &sink, 8)
                    continue
                }
                let fd = Int(UInt32(truncatingIfNeeded: key))
                // A descriptor closed and reused during this batch carries a new generation: the
                // old socket's event is not the new one's.
                guard fd < clients.count, let entry = clients[fd], entry.generation == UInt32(key >> 32) else {
                    continue
                }
                entry.client.socketReady(events: event.events)
            }
            tasks.withLock { swap(&$0, &taken) }
            for task in taken { task() }
            taken.removeAll(keepingCapacity: true)
            if earliestDeadline != .max {
                let now = monotonicNanoseconds()
                if now >= earliestDeadline { checkDeadlines(now: now) }
            }
        }
    }

    private func checkDeadlines(now: Int64) {
        earliestDeadline = .max
        var index = 0
        while index < clients.count {
            if let entry = clients[index] {
                let next = entry.client.checkDeadline(now: now)
                if next < earliestDeadline { earliestDeadline = next }
            }
            index += 1
        }
    }
}

/// Why replay's socket loops could not start.
struct SocketLoopError: Error, CustomStringConvertible {
    var errno: Int32

    var description: String {
        "cannot start a socket loop: " + String(cString: strerror(errno)).lowercased()
            + " (raise the open-file limit, ulimit -n)"
    }
}

/// Loops handed out in turn.
final class SocketLoopGroup: Sendable {
    /// The loops replay's plain-http connections share, one per core, started on first use and
    /// left waiting for the process's life (as NIO's singleton group is). An error when they
    /// could not start: each connection then fails with it.
    static let shared: Result<SocketLoopGroup, SocketLoopError> = Result {
        () throws(SocketLoopError) in
        try SocketLoopGroup(count: max(1, ProcessInfo.processInfo.activeProcessorCount))
    }

    private let loops: [SocketLoop]
    private let nextIndex = Atomic(0)

    init(count: Int) throws(SocketLoopError) {
        var loops: [SocketLoop] = []
        for index in 0..<count { loops.append(try SocketLoop(name: "replay-loop-\(index)")) }
        self.loops = loops
    }

    func next() -> SocketLoop {
        loops[nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue % loops.count]
    }
}

/// A loop-confined value in a `Sendable` wrapper, reached only on its loop (checked), as NIO's
/// `NIOLoopBound` does for event loops.
struct SocketLoopBound<Value: AnyObject>: @unchecked Sendable {
    let loop: SocketLoop
    private let stored: Value

    init(_ value: Value, loop: SocketLoop) {
        self.loop = loop
        self.stored = value
    }

    /// The value's identity, which any thread may compare.
    var id: ObjectIdentifier { ObjectIdentifier(stored) }

    var value: Value {
        precondition(loop.inLoop, "a socket-loop value was reached off its loop")
        return stored
    }
}
