import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// `HOST:PORT`, `:PORT` or `[V6]:PORT` of `--input-tcp` / `--output-tcp`.
public struct TCPAddress: Sendable, Equatable, CustomStringConvertible {
    /// Empty for "all addresses" (listen only).
    public var host: String
    public var port: Int

    public init(parsing text: String) throws(TCPSetupError) {
        guard let colon = text.lastIndex(of: ":") else {
            throw TCPSetupError("\"\(text)\": expected HOST:PORT or :PORT")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw TCPSetupError("\"\(text)\": the port must be a number from 0 to 65535")
        }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A `--input-tcp`/`--output-tcp` setting that cannot be used.
public struct TCPSetupError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Pending acknowledgements of `--input-tcp` records, keyed by request id and
/// type. GoReplay's framing has no acknowledgements; ours is an extension a
/// GoReplay sender ignores (it never reads its connection). A record is
/// acknowledged when the replayer is finished with it: a request when the
/// target answered it (or, without `--output-http`, when it was written to
/// the outputs), or when a filter or rate limit dropped it on purpose; an
/// original response when it was routed. See docs/goreplay.md.
public final class AcknowledgementBook: Sendable {
    struct Key: Hashable {
        var id: String
        var type: UInt8
    }

    private struct State {
        var pending: [Key: [@Sendable () -> Void]] = [:]
        var count = 0
    }

    /// Entries kept at most; beyond, arbitrary ones are forgotten (never acknowledged).
    let capacity: Int
    private let state = NIOLockedValueBox(State())
    /// Set by the first `register`: until then `settle` (called for every
    /// message) has nothing to look up and takes no lock.
    private let used = Atomic(false)

    public init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    /// Calls `acknowledge` when the record `id`/`type` is settled.
    public func register(id: String, type: PayloadType, acknowledge: @escaping @Sendable () -> Void) {
        if !used.load(ordering: .relaxed) { used.store(true, ordering: .releasing) }
        state.withLockedValue { state in
            if state.count >= capacity, let victim = state.pending.keys.first {
                state.count -= state.pending.removeValue(forKey: victim)?.count ?? 0
            }
            state.pending[Key(id: id, type: type.rawValue), default: []].append(acknowledge)
            state.count += 1
        }
    }

    /// Acknowledges the oldest pending record `id`/`type`, if any.
    public func settle(id: String, type: PayloadType) {
        guard used.load(ordering: .acquiring) else { return }
        let action: (@Sendable () -> Void)? = state.withLockedValue { state in
            guard state.count > 0 else { return nil }
            let key = Key(id: id, type: type.rawValue)
            guard var list = state.pending[key], !list.isEmpty else { return nil }
            let first = list.removeFirst()
            state.pending[key] = list.isEmpty ? nil : list
            state.count -= 1
            return first
        }
        action?()
    }

    /// Forgets the oldest pending record `id`/`type` without acknowledging it.
    public func forget(id: String, type: PayloadType) {
        state.withLockedValue { state in
            let key = Key(id: id, type: type.rawValue)
            guard var list = state.pending[key], !list.isEmpty else { return }
            list.removeFirst()
            state.pending[key] = list.isEmpty ? nil : list
            state.count -= 1
        }
    }

    public var pendingCount: Int { state.withLockedValue { $0.count } }
}

/// The acknowledgement extension's wire format.
public enum TCPAcknowledgements {
    /// The record a sender that reads acknowledgements sends first on each
    /// connection: a meta line with two fields and no payload, which
    /// GoReplay's receivers skip (fewer than three meta fields, empty data).
    public static let hello: [UInt8] = Array("goreplay-ack 1\n".utf8)
}

/// Settings of `--input-tcp`.
public struct TCPInputOptions: Sendable {
    /// `--input-tcp-secure`: TLS with this certificate and key (PEM files).
    public var secure = false
    public var certificatePath: String?
    public var keyPath: String?
    /// Records waiting for the pipeline; beyond, records are dropped and counted.
    public var bufferLength = 10_000
    /// Largest record accepted (bytes); a connection sending more is closed.
    public var maxRecordBytes = 64 * 1024 * 1024

    public init() {}
}

/// `--input-tcp ADDR`: accepts `--output-tcp` connections from other goreplay
/// (or GoReplay) processes; each carries `.gor` records. After each record
/// the replayer writes `A <n>\n` back once it is finished with record `n` of
/// that connection (see `AcknowledgementBook`).
public final class TCPInput: MessageInput {
    public let name: String
    /// The bound port (useful with port 0).
    public let port: Int
    private let group: MultiThreadedEventLoopGroup
    private let serverChannel: any Channel
    private let stream: AsyncThrowingStream<ReplayMessage, any Error>
    private let counters: NIOLockedValueBox<Counters>

    public struct Counters: Sendable {
        public var connections = 0
        public var records = 0
        /// Records dropped because the pipeline was behind.
        public var droppedBusy = 0
        /// Acknowledgements not written because the sender was not reading.
        public var acknowledgementsNotWritten = 0
    }

    public var counterSnapshot: Counters { counters.withLockedValue { $0 } }

    private init(
        name: String, port: Int, group: MultiThreadedEventLoopGroup, serverChannel: any Channel,
        stream: AsyncThrowingStream<ReplayMessage, any Error>, counters: NIOLockedValueBox<Counters>
    ) {
        self.name = name
        self.port = port
        self.group = group
        self.serverChannel = serverChannel
        self.stream = stream
        self.counters = counters
    }

    /// Binds and starts accepting.
    public static func listen(
        on address: TCPAddress, options: TCPInputOptions, statistics: ReplayStatistics,
        acknowledgements: AcknowledgementBook
    ) async throws -> TCPInput {
        var tls: NIOSSLContext?
        if options.secure {
            guard let certificatePath = options.certificatePath, let keyPath = options.keyPath else {
                throw TCPSetupError(
                    "--input-tcp-secure needs --input-tcp-certificate and --input-tcp-certificate-key (PEM files)")
            }
            do {
                let configuration = TLSConfiguration.makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem)))
                tls = try NIOSSLContext(configuration: configuration)
            } catch {
                throw TCPSetupError("--input-tcp-secure: cannot load \(certificatePath) / \(keyPath): \(error)")
            }
        }
        let (stream, continuation) = AsyncThrowingStream<ReplayMessage, any Error>.makeStream(
            bufferingPolicy: .bufferingOldest(options.bufferLength))
        let counters = NIOLockedValueBox(Counters())
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let maxRecord = options.maxRecordBytes
        let serverTLS = tls // an immutable copy for the channel initialiser, which runs on the event loop
        let host = address.host.isEmpty ? "0.0.0.0" : address.host
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    counters.withLockedValue { $0.connections += 1 }
                    return channel.eventLoop.makeCompletedFuture {
                        if let serverTLS {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverTLS))
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            RecordReceiver(
                                continuation: continuation, statistics: statistics, acknowledgements: acknowledgements,
                                counters: counters, maxRecordBytes: maxRecord))
                    }
                }
                .bind(host: host, port: address.port).get()
        } catch {
            try? await group.shutdownGracefully()
            throw TCPSetupError("--input-tcp \(address): cannot listen: \(error)")
        }
        let input = TCPInput(
            name: "tcp:\(address)", port: channel.localAddress?.port ?? address.port, group: group,
            serverChannel: channel, stream: stream, counters: counters)
        continuation.onTermination = { @Sendable _ in
            channel.close(promise: nil)
            group.shutdownGracefully { _ in }
        }
        return input
    }

    /// Records from every connection, until the consumer stops.
    public func messages() -> AsyncThrowingStream<ReplayMessage, any Error> { stream }

    /// Stops listening and drops the connections.
    public func close() async {
        try? await serverChannel.close()
        try? await group.shutdownGracefully()
    }
}

/// Splits one connection's bytes into `.gor` records.
private final class RecordReceiver: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let continuation: AsyncThrowingStream<ReplayMessage, any Error>.Continuation
    private let statistics: ReplayStatistics
    private let acknowledgements: AcknowledgementBook
    private let counters: NIOLockedValueBox<TCPInput.Counters>
    private let maxRecordBytes: Int
    private var pending: [UInt8] = []
    private var searchFrom = 0
    private var sequence: UInt64 = 0
    /// Set by the sender's hello record; GoReplay's senders never send it and
    /// never read, so they get no acknowledgements (unread data would turn
    /// their close into a reset that loses our unread records).
    private var acknowledging = false

    init(
        continuation: AsyncThrowingStream<ReplayMessage, any Error>.Continuation, statistics: ReplayStatistics,
        acknowledgements: AcknowledgementBook, counters: NIOLockedValueBox<TCPInput.Counters>, maxRecordBytes: Int
    ) {
        self.continuation = continuation
        self.statistics = statistics
        self.acknowledgements = acknowledgements
        self.counters = counters
        self.maxRecordBytes = maxRecordBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        buffer.readWithUnsafeReadableBytes { raw in
            pending.append(contentsOf: raw)
            return raw.count
        }
        let separator = GorFormat.separator
        while true {
            guard let end = Self.find(separator, in: pending, from: searchFrom) else {
                searchFrom = max(0, pending.count - separator.count + 1)
                break
            }
            handle(record: pending[0..<end], context: context)
            pending.removeSubrange(0..<(end + separator.count))
            searchFrom = 0
        }
        if pending.count > maxRecordBytes {
            statistics.updatePipeline {
                $0.corruptRecords += 1
                if $0.corruptReasons.count < 10 {
                    $0.corruptReasons.append(
                        "tcp input: record larger than \(maxRecordBytes) bytes without a separator; connection closed")
                }
            }
            pending = []
            context.close(promise: nil)
        }
    }

    private func handle(record: ArraySlice<UInt8>, context: ChannelHandlerContext) {
        if sequence == 0, !acknowledging, record.elementsEqual(TCPAcknowledgements.hello) {
            acknowledging = true
            return
        }
        sequence += 1
        let message: ReplayMessage
        do {
            message = try GorFormat.decodeRecord(record)
        } catch {
            statistics.updatePipeline {
                $0.corruptRecords += 1
                if $0.corruptReasons.count < 10 { $0.corruptReasons.append("tcp input record \(sequence): \(error)") }
            }
            return
        }
        let channel = context.channel
        let number = sequence
        let counters = counters
        if acknowledging {
            acknowledgements.register(id: message.id, type: message.type) {
                channel.eventLoop.execute {
                    // A sender that never reads (GoReplay) must not make us buffer acks forever.
                    guard channel.isActive, channel.isWritable else {
                        counters.withLockedValue { $0.acknowledgementsNotWritten += 1 }
                        return
                    }
                    channel.writeAndFlush(channel.allocator.buffer(string: "A \(number)\n"), promise: nil)
                }
            }
        }
        switch continuation.yield(message) {
        case .dropped:
            counters.withLockedValue { $0.droppedBusy += 1 }
            if acknowledging { acknowledgements.forget(id: message.id, type: message.type) }
        default:
            counters.withLockedValue { $0.records += 1 }
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        let first = needle[0]
        var index = start
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == first, haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

// A channel handler lives on its channel's event loop, as NIO's own do.
@available(*, unavailable)
extension RecordReceiver: Sendable {}
