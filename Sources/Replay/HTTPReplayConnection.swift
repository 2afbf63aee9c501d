import NIOCore

/// Response counts a connection gathers before adding them to the shared
/// statistics (one lock per batch rather than per response). Latencies are
/// kept with their histogram bucket, worked out here, and added to the
/// shared histogram under that lock: a histogram per connection was 9.6 KB
/// each to zero and merge, and cache misses.
struct ResponseBatch {
    static let capacity = 64
    var responses = 0
    var statusCodes: [Int: Int] = [:]
    private(set) var latencies: [(nanoseconds: Int64, bucket: Int)] = []
    /// The status of the previous response and how many in a row had it:
    /// most replays see one status, so the dictionary is touched per run.
    private var lastStatus = 0
    private var lastStatusRun = 0

    init() { latencies.reserveCapacity(Self.capacity) }

    var isFull: Bool { responses >= Self.capacity }

    mutating func record(status: Int, latency nanoseconds: Int64) {
        responses += 1
        latencies.append((nanoseconds, LatencyHistogram.bucket(of: nanoseconds)))
        if status != lastStatus {
            settleStatusRun()
            lastStatus = status
        }
        lastStatusRun += 1
    }

    /// Moves the current run of one status into `statusCodes`.
    mutating func settleStatusRun() {
        if lastStatusRun > 0 { statusCodes[lastStatus, default: 0] += lastStatusRun }
        lastStatusRun = 0
    }

    /// Empties the batch, keeping its storage.
    mutating func removeAll() {
        responses = 0
        statusCodes.removeAll(keepingCapacity: true)
        latencies.removeAll(keepingCapacity: true)
        lastStatusRun = 0
    }
}

/// A pooled connection as the pool and other threads hold it: a TLS connection's NIO handler, reached
/// only on its channel's event loop, or a plain-http socket, reached only on its `SocketLoop` (both
/// checked on access).
struct ReplayConnectionHandle: Sendable {
    let id: ObjectIdentifier
    private let transport: Transport

    private enum Transport: Sendable {
        case channel(any EventLoop, NIOLoopBound<HTTPReplayConnection>)
        case socket(SocketLoopBound<PlainHTTPConnection>)
    }

    init(_ connection: HTTPReplayConnection, eventLoop: any EventLoop) {
        id = ObjectIdentifier(connection)
        transport = .channel(eventLoop, NIOLoopBound(connection, eventLoop: eventLoop))
    }

    init(_ connection: SocketLoopBound<PlainHTTPConnection>) {
        id = connection.id
        transport = .socket(connection)
    }

    /// Sends on the connection, hopping to its thread unless already there.
    func send(_ request: PendingRequest) {
        switch transport {
        case .channel(let eventLoop, let connection):
            if eventLoop.inEventLoop {
                connection.value.send(request)
            } else {
                eventLoop.execute { connection.value.send(request) }
            }
        case .socket(let connection):
            if connection.loop.inLoop {
                connection.value.send(request)
            } else {
                connection.loop.execute { connection.value.send(request) }
            }
        }
    }

    func close() {
        switch transport {
        case .channel(let eventLoop, let connection):
            eventLoop.execute { connection.value.closeChannel() }
        case .socket(let connection):
            connection.loop.execute { connection.value.closeConnection() }
        }
    }
}

/// One pooled connection: a channel handler confined to its channel's event
/// loop, like NIO's own handlers (not `Sendable`); the pool holds a
/// `ReplayConnectionHandle`.
final class HTTPReplayConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let output: HTTPOutput
    private var context: ChannelHandlerContext?
    private var current: PendingRequest?
    private var framer: HTTPResponseFramer
    private var sentAt: Int64 = 0
    private var sentAtWall: Int64 = 0
    private var ended = false
    /// True from `send` until the pool takes this connection back as idle.
    private var holdsSlot = false
    private var batch = ResponseBatch()
    private var lastBatchFlush: Int64 = 0
    private var deadline: Int64 = .max
    private let timeoutNanoseconds: Int64
    private let trackResponses: Bool
    private let hostBytes: [UInt8]
    /// Set by channelActive/channelInactive: asking the channel takes an
    /// existential call and an atomic load per request.
    private var isActive = false
    /// Requests are written into this one buffer: NIO lets go of it once the
    /// write is done, so the next request reuses its storage.
    private var sendBuffer = ByteBuffer()
    private var timeoutCheck: RepeatedTask?
    /// Responses completed here: a closed connection that had served one
    /// is a stale keep-alive, not a dead target.
    private var served = 0
    /// Bytes of the current response seen so far.
    private var receivedAny = false
    /// Why the channel failed (TLS, reset), for the failure count.
    private var failureReason: String?
    /// This connection for the pool; set while the handler is in its pipeline.
    private(set) var handle: ReplayConnectionHandle?

    private func flushBatch(now: Int64 = monotonicNanoseconds()) {
        batch.settleStatusRun()
        output.recordResponses(batch)
        batch.removeAll()
        lastBatchFlush = now
    }

    init(output: HTTPOutput) {
        self.output = output
        self.timeoutNanoseconds = output.options.timeout.nanoseconds
        self.trackResponses = output.options.trackResponses
        self.hostBytes = output.hostHeaderBytes
        self.framer = HTTPResponseFramer(
            keepsRaw: output.options.trackResponses, rawLimit: output.options.responseBufferSize)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isActive = context.channel.isActive
        sendBuffer = context.channel.allocator.buffer(capacity: 1024)
        handle = ReplayConnectionHandle(self, eventLoop: context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handle = nil // the handle refers back to this handler
        self.context = nil
    }

    func closeChannel() {
        context?.close(promise: nil)
    }

    func channelActive(context: ChannelHandlerContext) {
        isActive = true
        context.fireChannelActive()
    }

    func send(_ request: PendingRequest, now: Int64 = monotonicNanoseconds()) {
        holdsSlot = true
        // The flag is the fast path; the channel has the last word when it is unset.
        guard let context, !ended, isActive || context.channel.isActive else {
            // Closed while idle: let the pool start a fresh connection for it.
            output.requeue(request)
            if ended {
                holdsSlot = false
                output.releaseSlot()
            } else {
                finishConnection()
            }
            return
        }
        current = request
        receivedAny = false
        framer.reset(requestMethodIsHead: request.isHead)
        sentAt = now
        if trackResponses { sentAtWall = wallNanoseconds() }
        deadline = sentAt + timeoutNanoseconds
        if timeoutCheck == nil {
            // One repeating check per connection is cheaper than a timer per request.
            let period = TimeAmount.milliseconds(max(10, min(250, output.options.timeout.nanoseconds / 4_000_000)))
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            timeoutCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
                bound.value.checkDeadline()
            }
        }
        sendBuffer.clear()
        request.write(into: &sendBuffer, host: hostBytes)
        context.writeAndFlush(wrapOutboundOut(sendBuffer), promise: nil)
    }

    private func checkDeadline() {
        guard current != nil, monotonicNanoseconds() >= deadline else { return }
        current = nil
        output.recordFailure(timeout: true, reason: "no response within --output-http-timeout")
        context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard current != nil else { return } // stray bytes after a timeout
        receivedAny = true
        do {
            let complete = try buffer.withUnsafeReadableBytes { bytes in try framer.feed(bytes) }
            if complete { completeCurrent(context: context) }
        } catch {
            current = nil
            output.recordFailure(timeout: false, reason: "unreadable response: \(error)")
            context.close(promise: nil)
        }
    }

    private func completeCurrent(context: ChannelHandlerContext) {
        var taken: PendingRequest?
        swap(&taken, &current) // a move: no retain of its buffers
        guard let request = taken else { return }
        served += 1
        let now = monotonicNanoseconds()
        let latency = now - sentAt
        batch.record(status: framer.statusCode, latency: latency)
        if batch.isFull || now - lastBatchFlush > 100_000_000 { flushBatch(now: now) }
        if trackResponses, let sink = output.responseSink {
            sink(
                ReplayMessage(
                    type: .replayedResponse, id: request.id, timestamp: sentAtWall, latency: latency,
                    payload: framer.raw))
        }
        if framer.closesConnection {
            context.close(promise: nil)
            return
        }
        if let handle, let next = output.nextRequest(after: handle) {
            send(next, now: now)
        } else {
            holdsSlot = false
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        if let request = current {
            if framer.isCloseDelimited {
                completeCurrent(context: context)
            } else if served > 0, !receivedAny, request.isIdempotent, !request.retried, !output.isClosing {
                // The server closed this keep-alive connection as we reused
                // it (idle timeout, request limit): send it once more on a
                // fresh one, as Go's client does.
                current = nil
                holdsSlot = false
                output.retry(request)
                output.releaseSlotWithoutStarting()
            } else {
                current = nil
                let reason =
                    failureReason
                    ?? (receivedAny ? "connection closed mid-response" : "connection closed before a response")
                output.recordFailure(timeout: false, reason: reason)
            }
        }
        timeoutCheck?.cancel()
        timeoutCheck = nil
        flushBatch()
        finishConnection()
        context.fireChannelInactive()
    }

    /// Reports the end of this connection to the pool, once.
    private func finishConnection() {
        guard !ended else { return }
        ended = true
        let hadRequest = holdsSlot
        holdsSlot = false
        output.connectionEnded(ObjectIdentifier(self), hadRequest: hadRequest)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if failureReason == nil { failureReason = output.describeChannelError(error) }
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension HTTPReplayConnection: Sendable {}
