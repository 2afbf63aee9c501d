import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Settings of `--middleware`.
public struct MiddlewareOptions: Sendable {
    /// Messages waiting to be written to the middleware; more are dropped and counted.
    public var queueLength = 1000
    /// Bytes waiting to be written to the middleware (bounds memory with large payloads).
    public var queueBytes = 64 * 1024 * 1024
    /// Longest line read back; longer lines are skipped and counted.
    public var maxLineBytes = 2 * (5 * 1024 * 1024 + 1024) + 1
    /// A middleware that takes no input and writes no output for this long while
    /// messages wait for it is declared hung and killed.
    public var stallTimeout: Duration = .seconds(5)
    /// After the inputs end: how long traffic must be quiet before the
    /// middleware's stdin is closed (replayed responses may still be coming).
    public var quietPeriod: Duration = .milliseconds(300)
    /// After its stdin is closed: how long the middleware may take to exit.
    public var exitGrace: Duration = .seconds(5)

    public init() {}
}

/// Why a middleware was given up on. Each is reported in one line and makes
/// `goreplay` exit with status 3.
public enum MiddlewareFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case couldNotStart(command: String, reason: String)
    /// It closed its stdout or exited while inputs were still running.
    case exitedEarly(command: String, status: String, after: Int)
    /// Messages waited but it neither read nor wrote for the stall timeout.
    case stalled(command: String, seconds: Int, waiting: Int)
    /// It did not exit within the grace period after its stdin was closed.
    case didNotExit(command: String, seconds: Int)
    /// It exited with a non-zero status at the end of the run.
    case failedAtEnd(command: String, status: String)
    /// Lines it wrote could not be decoded (they were skipped).
    case invalidLines(command: String, count: Int, first: String)

    public var description: String {
        switch self {
        case .couldNotStart(let command, let reason):
            "middleware \"\(command)\" could not be started: \(reason); check the command runs with /bin/sh -c"
        case .exitedEarly(let command, let status, let after):
            "middleware \"\(command)\" stopped (\(status)) after returning \(after) messages while input continued; a middleware must keep reading stdin until it closes"
        case .stalled(let command, let seconds, let waiting):
            "middleware \"\(command)\" read and wrote nothing for \(seconds)s with \(waiting) messages waiting; killed (it must read stdin continuously and flush stdout)"
        case .didNotExit(let command, let seconds):
            "middleware \"\(command)\" did not exit within \(seconds)s after its stdin was closed; killed"
        case .failedAtEnd(let command, let status):
            "middleware \"\(command)\" ended with \(status)"
        case .invalidLines(let command, let count, let first):
            "middleware \"\(command)\" wrote \(count) lines that are not hex-encoded records (skipped); first: \(first)"
        }
    }
}

/// Counters of the middleware, for the summary.
public struct MiddlewareCounters: Sendable, Equatable {
    /// Messages written to the middleware's stdin.
    public var written = 0
    /// Messages it wrote back (decoded and passed on).
    public var returned = 0
    /// Dropped because the queue to its stdin was full (or it had stopped).
    public var droppedQueueFull = 0
    /// Lines that were not hex, or whose record had no valid meta line.
    public var invalidLines = 0
    /// Lines longer than the limit (skipped).
    public var oversizedLines = 0

    public init() {}
}

/// GoReplay's `--middleware`: one child process that sees every message as a
/// line of lowercase hex of `meta line + "\n" + payload` on its stdin, and
/// whose stdout lines (same encoding) are what goes on to the outputs.
///
/// The command runs through `/bin/sh -c` (GoReplay splits it on spaces and
/// runs it without a shell; commands without quotes or shell syntax behave the
/// same). Its stderr is inherited. Two threads do the blocking pipe I/O, so a
/// middleware that stops reading can never block an input: the queue to it is
/// bounded in messages and bytes and what does not fit is dropped and counted.
public final class Middleware: Sendable {
    public let command: String
    let options: MiddlewareOptions
    private let state: NIOLockedValueBox<State>
    private let wakeWriter = DispatchSemaphore(value: 0)

    private struct State {
        var queue: [ReplayMessage] = []
        var queueHead = 0
        var queuedBytes = 0
        var inputClosed = false
        var counters = MiddlewareCounters()
        var failure: MiddlewareFailure?
        var firstInvalid: String?
        var lastProgress = ContinuousClock.now
        var stdoutEnded = false
        var exitStatus: String?
        var pid: pid_t = 0
        var stdinDescriptor: Int32 = -1
        var writerDone = false
        /// Taken from the queue by the writer, not yet written.
        var inHand = 0
        var stopping = false
    }

    public init(command: String, options: MiddlewareOptions = MiddlewareOptions()) {
        self.command = command
        self.options = options
        self.state = NIOLockedValueBox(State())
    }

    public var counters: MiddlewareCounters { state.withLockedValue { $0.counters } }
    /// The first fatal failure, if any (invalid lines are reported by `endOfRunFailure`).
    public var failure: MiddlewareFailure? { state.withLockedValue { $0.failure } }

    /// What to report after the run: a fatal failure, else skipped invalid lines.
    public var endOfRunFailure: MiddlewareFailure? {
        state.withLockedValue { state in
            if let failure = state.failure { return failure }
            if state.counters.invalidLines > 0 {
                return .invalidLines(
                    command: command, count: state.counters.invalidLines, first: state.firstInvalid ?? "")
            }
            return nil
        }
    }

    /// Starts the process; every decoded line it writes goes to `sink`.
    public func start(sink: @escaping @Sendable (ReplayMessage) -> Void) throws(MiddlewareFailure) {
        // A middleware that exits must not kill us with SIGPIPE on the next write.
        signal(SIGPIPE, SIG_IGN)
        var toChild: [Int32] = [-1, -1]
        var fromChild: [Int32] = [-1, -1]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else {
            throw .couldNotStart(command: command, reason: String(cString: strerror(errno)))
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], STDIN_FILENO)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], STDOUT_FILENO)
        for descriptor in toChild + fromChild { posix_spawn_file_actions_addclose(&actions, descriptor) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group (so the whole pipeline can be stopped), default
        // signal handling and an empty mask whatever this process inherited.
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let arguments = ["/bin/sh", "-c", command]
        let cArguments = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        let result = posix_spawn(&pid, "/bin/sh", &actions, &attributes, cArguments, environ)
        close(toChild[0])
        close(fromChild[1])
        guard result == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw .couldNotStart(command: command, reason: String(cString: strerror(result)))
        }
        _ = fcntl(toChild[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fromChild[0], F_SETFD, FD_CLOEXEC)
        state.withLockedValue {
            $0.pid = pid
            $0.stdinDescriptor = toChild[1]
            $0.lastProgress = .now
        }
        let stdinDescriptor = toChild[1]
        let stdoutDescriptor = fromChild[0]
        let writer = Thread { [self] in writeLoop(descriptor: stdinDescriptor) }
        writer.name = "middleware-stdin"
        writer.start()
        let reader = Thread { [self] in readLoop(descriptor: stdoutDescriptor, sink: sink) }
        reader.name = "middleware-stdout"
        reader.start()
    }

    /// Whether `submit` would queue a message of `size` bytes now (false
    /// once the middleware failed or stopped: nothing will make room).
    public func hasRoom(forBytes size: Int) -> Bool {
        state.withLockedValue { state in
            let waiting = state.queue.count - state.queueHead
            if state.inputClosed || state.failure != nil { return true }
            return waiting < options.queueLength && (state.queuedBytes + size <= options.queueBytes || waiting == 0)
        }
    }

    /// Queues a message for the middleware; never waits.
    public func submit(_ message: ReplayMessage) {
        let accepted = state.withLockedValue { state -> Bool in
            let waiting = state.queue.count - state.queueHead
            guard !state.inputClosed, state.failure == nil, waiting < options.queueLength,
                state.queuedBytes + message.payload.count <= options.queueBytes || waiting == 0
            else {
                state.counters.droppedQueueFull += 1
                return false
            }
            // A stall is measured from when work started waiting, not from the last message.
            if waiting == 0 && state.inHand == 0 { state.lastProgress = .now }
            state.queue.append(message)
            state.queuedBytes += message.payload.count
            return true
        }
        if accepted { signalWriter() }
    }

    private func signalWriter() {
        wakeWriter.signal()
    }

    private func writeLoop(descriptor: Int32) {
        var line: [UInt8] = []
        while true {
            // Woken by submit/finish/stop; the timeout only guards against a lost wake-up.
            _ = wakeWriter.wait(timeout: .now() + .milliseconds(100))
            let (batch, closed) = state.withLockedValue { state -> ([ReplayMessage], Bool) in
                let batch = Array(state.queue[state.queueHead...])
                state.queue.removeAll(keepingCapacity: state.queue.count < 4096)
                state.queueHead = 0
                state.queuedBytes = 0
                state.inHand = batch.count
                return (batch, state.inputClosed || state.stopping)
            }
            // Lines are written in chunks of up to 64 KiB: one syscall for many small messages.
            var pendingCount = 0
            func writePending() {
                guard pendingCount > 0 else { return }
                let ok = writeAll(line, to: descriptor)
                let count = pendingCount
                state.withLockedValue {
                    if ok { $0.counters.written += count } else { $0.counters.droppedQueueFull += count }
                    $0.inHand -= count
                    $0.lastProgress = .now
                }
                line.removeAll(keepingCapacity: true)
                pendingCount = 0
            }
            for message in batch {
                Self.encodeLine(message, into: &line)
                pendingCount += 1
                if line.count >= 64 * 1024 { writePending() }
            }
            writePending()
            if batch.isEmpty && closed {
                close(descriptor)
                state.withLockedValue {
                    $0.writerDone = true
                    $0.stdinDescriptor = -1
                }
                return
            }
        }
    }

    private func writeAll(_ bytes: [UInt8], to descriptor: Int32) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                write(descriptor, raw.baseAddress! + offset, raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
            state.withLockedValue { $0.lastProgress = .now }
        }
        return true
    }

    private func readLoop(descriptor: Int32, sink: @Sendable (ReplayMessage) -> Void) {
        var reader = LineSplitter(maxLineBytes: options.maxLineBytes)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var lineNumber = 0
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            state.withLockedValue { $0.lastProgress = .now }
            reader.feed(chunk[0..<count]) { line in
                lineNumber += 1
                switch line {
                case .oversized:
                    state.withLockedValue { $0.counters.oversizedLines += 1 }
                case .complete(let bytes):
                    switch Self.decodeLine(bytes) {
                    case .success(let message):
                        state.withLockedValue { $0.counters.returned += 1 }
                        sink(message)
                    case .failure(let reason):
                        state.withLockedValue {
                            $0.counters.invalidLines += 1
                            if $0.firstInvalid == nil { $0.firstInvalid = "line \(lineNumber): \(reason)" }
                        }
                    }
                }
            }
        }
        close(descriptor)
        let pid = state.withLockedValue { $0.pid }
        var status: Int32 = 0
        var waited: pid_t
        repeat { waited = waitpid(pid, &status, 0) } while waited < 0 && errno == EINTR
        let text = waited == pid ? Self.describe(status: status) : "status unknown"
        let exitedCleanly = waited == pid && (status & 0x7f) == 0 && ((status >> 8) & 0xff) == 0
        state.withLockedValue { state in
            state.stdoutEnded = true
            state.exitStatus = text
            guard state.failure == nil, !state.stopping else { return }
            if !state.inputClosed {
                state.failure = .exitedEarly(command: command, status: text, after: state.counters.returned)
            } else if !exitedCleanly {
                state.failure = .failedAtEnd(command: command, status: text)
            }
        }
        signalWriter()
    }

    static func describe(status: Int32) -> String {
        if status & 0x7f == 0 { return "exit status \((status >> 8) & 0xff)" }
        return "signal \(status & 0x7f)"
    }

    /// Polls until the middleware fails fatally (stopped early or stalled);
    /// returns when cancelled too.
    public func waitForFailure() async {
        while !Task.isCancelled {
            if checkStall() != nil { return }
            do { try await Task.sleep(for: .milliseconds(50)) } catch { return }
        }
    }

    /// Marks and returns a fatal failure; detects a stall.
    private func checkStall() -> MiddlewareFailure? {
        let killPID: pid_t? = state.withLockedValue { state in
            if state.failure != nil || state.stopping { return nil }
            let waiting = state.queue.count - state.queueHead + state.inHand
            let stalled = waiting > 0 && ContinuousClock.now - state.lastProgress > options.stallTimeout
            guard stalled else { return nil }
            state.failure = .stalled(
                command: command, seconds: Int(options.stallTimeout.components.seconds), waiting: waiting)
            state.stopping = true
            return state.pid
        }
        if let killPID { Self.kill(killPID) }
        if killPID != nil { signalWriter() }
        return state.withLockedValue { $0.failure }
    }

    /// After the inputs end: waits for traffic to go quiet, closes the
    /// middleware's stdin and waits for it to write its last lines and exit.
    /// `isQuiet` lets the caller hold the middleware open while replayed
    /// responses may still come.
    public func finishInput() async {
        var quietSince = ContinuousClock.now
        var lastSeen = state.withLockedValue { ($0.counters.written, $0.counters.returned) }
        let giveUp = ContinuousClock.now + options.quietPeriod * 20 + .seconds(10)
        while ContinuousClock.now < giveUp {
            if state.withLockedValue({ $0.failure != nil || $0.stdoutEnded }) { break }
            if checkStall() != nil { return }
            let now = state.withLockedValue {
                ($0.counters.written, $0.counters.returned, $0.queue.count - $0.queueHead + $0.inHand)
            }
            if now.0 != lastSeen.0 || now.1 != lastSeen.1 || now.2 > 0 {
                lastSeen = (now.0, now.1)
                quietSince = .now
            } else if ContinuousClock.now - quietSince >= options.quietPeriod {
                break
            }
            do { try await Task.sleep(for: .milliseconds(20)) } catch { return }
        }
        state.withLockedValue { $0.inputClosed = true }
        signalWriter()
        let deadline = ContinuousClock.now + options.exitGrace
        while ContinuousClock.now < deadline {
            if state.withLockedValue({ $0.stdoutEnded || $0.failure != nil }) { return }
            do { try await Task.sleep(for: .milliseconds(20)) } catch { break }
        }
        let pid: pid_t? = state.withLockedValue { state in
            guard !state.stdoutEnded, state.failure == nil else { return nil }
            state.failure = .didNotExit(command: command, seconds: Int(options.exitGrace.components.seconds))
            state.stopping = true
            return state.pid
        }
        if let pid { Self.kill(pid) }
    }

    /// Kills the middleware (its process group) if it still runs.
    public func stop() {
        let pid: pid_t? = state.withLockedValue { state in
            state.stopping = true
            state.inputClosed = true
            return state.stdoutEnded || state.pid == 0 ? nil : state.pid
        }
        if let pid { Self.kill(pid) }
        signalWriter()
    }

    private static func kill(_ pid: pid_t) {
        // The process group we created at spawn, so `sh -c 'a | b'` goes too.
        if Glibc.kill(-pid, SIGKILL) != 0 { _ = Glibc.kill(pid, SIGKILL) }
    }

    // MARK: - Encoding

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `hex(meta + "\n" + payload) + "\n"`, as GoReplay writes it.
    public static func encodeLine(_ message: ReplayMessage, into line: inout [UInt8]) {
        let meta = GorFormat.metaLine(of: message)
        line.reserveCapacity((meta.utf8.count + 1 + message.payload.count) * 2 + 1)
        func append(_ byte: UInt8) {
            line.append(hexDigits[Int(byte >> 4)])
            line.append(hexDigits[Int(byte & 0x0f)])
        }
        for byte in meta.utf8 { append(byte) }
        append(0x0A)
        for byte in message.payload { append(byte) }
        line.append(0x0A)
    }

    /// Decodes one line (without its newline; a trailing CR is ignored).
    public static func decodeLine(_ line: ArraySlice<UInt8>) -> Result<ReplayMessage, LineError> {
        var hex = line
        if hex.last == 0x0D { hex = hex.dropLast() }
        guard !hex.isEmpty else { return .failure(.empty) }
        guard hex.count % 2 == 0 else { return .failure(.oddLength(hex.count)) }
        var bytes = [UInt8]()
        bytes.reserveCapacity(hex.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            guard let high = nibble(hex[index]) else { return .failure(.notHex(column: index - hex.startIndex + 1)) }
            guard let low = nibble(hex[index + 1]) else { return .failure(.notHex(column: index - hex.startIndex + 2)) }
            bytes.append(high << 4 | low)
            index += 2
        }
        do {
            return .success(try GorFormat.decodeRecord(bytes[...]))
        } catch {
            return .failure(.badRecord(error.description))
        }
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x61...0x66: byte - 0x61 + 10
        case 0x41...0x46: byte - 0x41 + 10
        default: nil
        }
    }

    /// Why a line from the middleware was skipped.
    public enum LineError: Error, Sendable, Equatable, CustomStringConvertible {
        case empty
        case oddLength(Int)
        case notHex(column: Int)
        case badRecord(String)

        public var description: String {
            switch self {
            case .empty: "empty line"
            case .oddLength(let count): "odd number of hex digits (\(count))"
            case .notHex(let column): "not a hex digit at column \(column)"
            case .badRecord(let reason): "decoded record: \(reason)"
            }
        }
    }
}

/// Splits a byte stream into lines of bounded length.
struct LineSplitter {
    enum Line {
        case complete(ArraySlice<UInt8>)
        /// A line longer than the limit was skipped.
        case oversized
    }

    let maxLineBytes: Int
    private var pending: [UInt8] = []
    private var skipping = false

    init(maxLineBytes: Int) {
        self.maxLineBytes = maxLineBytes
    }

    mutating func feed(_ chunk: ArraySlice<UInt8>, _ emit: (Line) -> Void) {
        var start = chunk.startIndex
        while let newline = chunk[start...].firstIndex(of: 0x0A) {
            if skipping {
                skipping = false
                emit(.oversized)
            } else if pending.isEmpty {
                emit(.complete(chunk[start..<newline]))
            } else {
                pending.append(contentsOf: chunk[start..<newline])
                if pending.count > maxLineBytes {
                    emit(.oversized)
                } else {
                    emit(.complete(pending[...]))
                }
                pending.removeAll(keepingCapacity: pending.count < 1 << 20)
            }
            start = newline + 1
        }
        guard start < chunk.endIndex, !skipping else { return }
        pending.append(contentsOf: chunk[start...])
        if pending.count > maxLineBytes {
            pending.removeAll()
            skipping = true
        }
    }
}
