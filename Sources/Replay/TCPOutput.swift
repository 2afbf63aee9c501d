import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Settings of `--output-tcp`.
public struct TCPOutputOptions: Sendable {
    /// `--output-tcp-workers`: connections to the replayer (GoReplay: 10).
    public var workers = 10
    /// `--output-tcp-sticky`: a request and its responses use the same connection.
    public var sticky = false
    /// `--output-tcp-secure`: TLS, verifying the replayer's certificate.
    public var secure = false
    /// `--output-tcp-skip-verify`: TLS without verification (explicit only).
    public var skipVerify = false
    /// `--output-tcp-ca-certificate`: trust this PEM CA instead of the system's.
    public var caCertificatePath: String?
    /// Records waiting per connection (GoReplay: 100); more are dropped and counted.
    public var queueLength = 100
    /// Records written but not yet acknowledged, per connection, that are tracked.
    public var window = 10_000
    /// Reconnection backoff: first and longest wait.
    public var initialBackoff: Duration = .milliseconds(100)
    public var maxBackoff: Duration = .seconds(2)
    public var connectTimeout: Duration = .seconds(5)

    public init() {}
}

/// `--output-tcp ADDR`: forwards requests and original responses (types 1
/// and 2, as GoReplay) to a replayer's `--input-tcp`, in `.gor` framing.
///
/// Delivery is at most once. A record is resent after a reconnection only if
/// it never reached the socket. A record written to the socket counts as
/// `acknowledged` when the replayer sends `A <n>\n` for it, and as
/// `unacknowledged` when the connection ends first (or the replayer is
/// GoReplay, which never acknowledges): it may or may not have been
/// replayed, so it is not sent again.
public final class TCPOutput: MessageOutput {
    public let name: String
    let address: TCPAddress
    let options: TCPOutputOptions
    private let statistics: ReplayStatistics
    private let slot: Int
    private let workers: [TCPOutputWorker]
    private let roundRobin = NIOLockedValueBox(0)
    private let tasks: NIOLockedValueBox<[Task<Void, Never>]>

    public init(
        address: TCPAddress, options: TCPOutputOptions, group: any EventLoopGroup, statistics: ReplayStatistics
    ) throws(TCPSetupError) {
        guard !address.host.isEmpty else {
            throw TCPSetupError("--output-tcp \(address): a host is needed, e.g. 127.0.0.1:28020")
        }
        guard options.workers >= 1 else { throw TCPSetupError("--output-tcp-workers must be at least 1") }
        var tls: NIOSSLContext?
        if options.secure || options.skipVerify || options.caCertificatePath != nil {
            var configuration = TLSConfiguration.makeClientConfiguration()
            if options.skipVerify {
                configuration.certificateVerification = .none
            } else if let path = options.caCertificatePath {
                configuration.trustRoots = .file(path)
            }
            do { tls = try NIOSSLContext(configuration: configuration) } catch {
                throw TCPSetupError("--output-tcp TLS setup failed: \(error)")
            }
        }
        self.name = "tcp:\(address)"
        self.address = address
        self.options = options
        self.statistics = statistics
        let slot = statistics.registerOutput(name: "tcp:\(address)")
        self.slot = slot
        self.workers = (0..<options.workers).map { _ in
            TCPOutputWorker(
                address: address, options: options, tls: tls, group: group, statistics: statistics, slot: slot)
        }
        let workers = self.workers
        self.tasks = NIOLockedValueBox(workers.map { worker in Task { await worker.run() } })
    }

    public func emit(_ message: ReplayMessage) {
        guard message.type != .replayedResponse else { return }
        let index: Int
        if options.sticky {
            index = Int(Self.fnv32a(message.id) % UInt32(workers.count))
        } else {
            index = roundRobin.withLockedValue { counter in
                defer { counter &+= 1 }
                return counter % workers.count
            }
        }
        statistics.updateOutput(slot) { $0.accepted += 1 }
        if !workers[index].enqueue(message) {
            statistics.updateOutput(slot) { $0.droppedQueueFull += 1 }
        }
    }

    /// FNV-1a 32 of the id, as GoReplay's sticky mode.
    static func fnv32a(_ text: String) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return hash
    }

    public func recordRateLimited() { statistics.updateOutput(slot) { $0.droppedRateLimit += 1 } }
    public func flush() {}

    /// Sends what is queued and waits for acknowledgements for at most
    /// `grace`; whatever is left is counted (unsent as dropped, written as
    /// unacknowledged).
    public func close(grace: Duration) async {
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline, workers.contains(where: { !$0.isIdle }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        for worker in workers { worker.stop() }
        for task in tasks.withLockedValue({ $0 }) {
            task.cancel()
            await task.value
        }
    }

    /// Why the last connection attempt failed, if one did (e.g. TLS verification).
    public var lastConnectionError: String? { workers.lazy.compactMap(\.lastError).first }

    /// Which worker a message goes to (for tests of sticky mode).
    func workerIndex(for id: String) -> Int { Int(Self.fnv32a(id) % UInt32(workers.count)) }
}

/// One connection to the replayer, reconnecting with backoff.
final class TCPOutputWorker: Sendable {
    let address: TCPAddress
    let options: TCPOutputOptions
    let tls: NIOSSLContext?
    let group: any EventLoopGroup
    let statistics: ReplayStatistics
    let slot: Int
    private let state = NIOLockedValueBox(State())
    private let wake = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)

    struct State {
        var queue: [ReplayMessage] = []
        var stopped = false
        /// Sequence numbers written on the current connection, not acknowledged yet.
        var unacknowledged: Set<UInt64> = []
        /// Records taken off the queue by `send` and not yet written: neither queued nor awaiting an
        /// acknowledgement, so without this a worker mid-batch would look idle and `close` would stop it.
        var takenForSending = 0
        var connected = false
        var lastError: String?
    }

    init(
        address: TCPAddress, options: TCPOutputOptions, tls: NIOSSLContext?, group: any EventLoopGroup,
        statistics: ReplayStatistics, slot: Int
    ) {
        self.address = address
        self.options = options
        self.tls = tls
        self.group = group
        self.statistics = statistics
        self.slot = slot
    }

    var isIdle: Bool {
        state.withLockedValue { $0.queue.isEmpty && $0.takenForSending == 0 && $0.unacknowledged.isEmpty }
    }

    /// Queues; false when full or stopped.
    func enqueue(_ message: ReplayMessage) -> Bool {
        let accepted = state.withLockedValue { state -> Bool in
            guard !state.stopped, state.queue.count < options.queueLength else { return false }
            state.queue.append(message)
            return true
        }
        if accepted { resume() }
        return accepted
    }

    func stop() {
        state.withLockedValue { $0.stopped = true }
        resume()
    }

    private func resume() {
        wake.withLockedValue { continuation in
            continuation?.resume()
            continuation = nil
        }
    }

    /// Waits until there is something to send, the worker stops, or `channel` closes.
    private func waitForWork(closing channel: (any Channel)? = nil) async {
        let ready: @Sendable () -> Bool = { [state] in
            state.withLockedValue { !$0.queue.isEmpty || $0.stopped } || (channel.map { !$0.isActive } ?? false)
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if ready() {
                continuation.resume()
                return
            }
            wake.withLockedValue { existing in
                existing?.resume()
                existing = continuation
            }
            // Re-check: a wake-up between the check and the store would be lost.
            if ready() { resume() }
        }
    }

    func run() async {
        var backoff = options.initialBackoff
        while !state.withLockedValue({ $0.stopped }) {
            await waitForWork()
            if state.withLockedValue({ $0.stopped }) { break }
            let channel: any Channel
            do {
                channel = try await connect()
            } catch {
                state.withLockedValue { $0.lastError = "\(error)" }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, options.maxBackoff)
                continue
            }
            backoff = options.initialBackoff
            channel.closeFuture.whenComplete { [self] _ in resume() }
            state.withLockedValue {
                $0.connected = true
                $0.unacknowledged = []
            }
            await send(on: channel)
            channel.close(promise: nil)
            // Written but unconfirmed: may or may not have been replayed; never resent.
            let lost = state.withLockedValue { state -> Int in
                defer {
                    state.unacknowledged = []
                    state.connected = false
                }
                return state.unacknowledged.count
            }
            if lost > 0 { statistics.updateOutput(slot) { $0.unacknowledged += lost } }
        }
        let unsent = state.withLockedValue { state -> Int in
            defer { state.queue = [] }
            return state.queue.count
        }
        if unsent > 0 { statistics.updateOutput(slot) { $0.failed += unsent } }
    }

    var lastError: String? { state.withLockedValue { $0.lastError } }

    private func connect() async throws -> any Channel {
        let tls = tls
        let handler = AcknowledgementReader(waitsForHandshake: tls != nil) { [weak self] sequence in
            self?.acknowledged(sequence)
        }
        let host = address.host
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(options.connectTimeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // An IP address is verified against the certificate's IP entries, a name against its DNS entries.
                        let isIP = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: isIP ? nil : host))
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: host, port: address.port).get()
        // With TLS, connected means handshake done (certificate verified), not just TCP.
        do {
            try await handler.ready(on: channel.eventLoop, timeout: options.connectTimeout).get()
        } catch {
            channel.close(promise: nil)
            throw error
        }
        state.withLockedValue { $0.lastError = nil }
        return channel
    }

    private func acknowledged(_ sequence: UInt64) {
        let known = state.withLockedValue { $0.unacknowledged.remove(sequence) != nil }
        if known { statistics.updateOutput(slot) { $0.acknowledged += 1 } }
    }

    /// Writes queued records until the connection ends or the worker stops
    /// with nothing left to send and nothing left to confirm.
    private func send(on channel: any Channel) async {
        var sequence: UInt64 = 0
        var bytes: [UInt8] = []
        // Ask for acknowledgements (a GoReplay replayer skips this record).
        do {
            try await channel.writeAndFlush(
                channel.allocator.buffer(bytes: TCPAcknowledgements.hello + GorFormat.separator)
            ).get()
        } catch {
            return
        }
        while channel.isActive {
            let batch = state.withLockedValue { state -> [ReplayMessage] in
                defer {
                    state.takenForSending = state.queue.count
                    state.queue.removeAll(keepingCapacity: true)
                }
                return state.queue
            }
            if batch.isEmpty {
                if state.withLockedValue({ $0.stopped }) { return }
                await waitForWork(closing: channel)
                continue
            }
            for (offset, message) in batch.enumerated() {
                guard channel.isActive else {
                    // Never reached the socket: send again after reconnecting.
                    requeue(Array(batch[offset...]))
                    return
                }
                sequence += 1
                bytes.removeAll(keepingCapacity: true)
                GorFormat.encode(message, into: &bytes)
                let number = sequence
                state.withLockedValue { state in
                    if state.unacknowledged.count >= options.window, let oldest = state.unacknowledged.min() {
                        state.unacknowledged.remove(oldest)
                        statistics.updateOutput(slot) { $0.unacknowledged += 1 }
                    }
                    state.unacknowledged.insert(number)
                    state.takenForSending -= 1
                }
                do {
                    try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).get()
                    statistics.updateOutput(slot) { $0.sent += 1 }
                } catch {
                    // Possibly partly written: counted as unacknowledged when the connection is torn down.
                    statistics.updateOutput(slot) { $0.sent += 1 }
                    if offset + 1 < batch.count { requeue(Array(batch[(offset + 1)...])) }
                    return
                }
            }
        }
    }

    private func requeue(_ messages: [ReplayMessage]) {
        state.withLockedValue { state in
            state.queue.insert(contentsOf: messages, at: 0)
            state.takenForSending = 0
        }
    }
}

/// Reads `A <n>\n` lines from the replayer.
private final class AcknowledgementReader: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let onAcknowledge: @Sendable (UInt64) -> Void
    private let pending = NIOLockedValueBox([UInt8]())
    private let waitsForHandshake: Bool
    /// Outcome of the TLS handshake, until someone asks for it.
    private let handshake = NIOLockedValueBox<(result: Result<Void, any Error>?, promise: EventLoopPromise<Void>?)>(
        (nil, nil))

    init(waitsForHandshake: Bool, onAcknowledge: @escaping @Sendable (UInt64) -> Void) {
        self.waitsForHandshake = waitsForHandshake
        self.onAcknowledge = onAcknowledge
    }

    /// Succeeds when the connection can carry records (TLS handshake done).
    func ready(on eventLoop: any EventLoop, timeout: Duration) -> EventLoopFuture<Void> {
        guard waitsForHandshake else { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        eventLoop.scheduleTask(in: TimeAmount(timeout)) { [self] in
            finishHandshake(.failure(TCPSetupError("TLS handshake did not finish within \(timeout)")))
        }
        let known: Result<Void, any Error>? = handshake.withLockedValue { state in
            if state.result == nil { state.promise = promise }
            return state.result
        }
        if let known { promise.completeWith(known) }
        return promise.futureResult
    }

    private func finishHandshake(_ result: Result<Void, any Error>) {
        let promise: EventLoopPromise<Void>? = handshake.withLockedValue { state in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.promise = nil }
            return state.promise
        }
        promise?.completeWith(result)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { finishHandshake(.success(())) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finishHandshake(.failure(ChannelError.ioOnClosedChannel))
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let numbers: [UInt64] = pending.withLockedValue { pending in
            pending += buffer.readBytes(length: buffer.readableBytes) ?? []
            var numbers: [UInt64] = []
            while let newline = pending.firstIndex(of: 0x0A) {
                let line = pending[..<newline]
                if line.count > 2, line.first == 0x41, line[line.startIndex + 1] == 0x20,
                    let value = UInt64(String(decoding: line.dropFirst(2), as: UTF8.self))
                {
                    numbers.append(value)
                }
                pending.removeSubrange(...newline)
            }
            if pending.count > 4096 { pending.removeAll() } // not our peer; ignore
            return numbers
        }
        for number in numbers { onAcknowledge(number) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finishHandshake(.failure(error))
        context.close(promise: nil)
    }
}
