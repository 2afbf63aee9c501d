import NIOCore

/// Response counts a connection gathers before adding them to the shared
/// statistics (one lock per batch rather than per response).
struct ResponseBatch {
    var responses = 0
    var statusCodes: [Int: Int] = [:]
    var latency = LatencyHistogram()
    /// The status of the previous response and how many in a row had it:
    /// most replays see one status, so the dictionary is touched per run.
    private var lastStatus = 0
    private var lastStatusRun = 0

    mutating func record(status: Int, latency nanoseconds: Int64) {
        responses += 1
        latency.record(nanoseconds: nanoseconds)
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
        latency.removeAll()
        lastStatusRun = 0
    }
}

/// A pooled connection as the pool and other threads hold it: the handler
/// is reached only on its channel's event loop (`NIOLoopBound` checks it).
struct ReplayConnectionHandle: Sendable {
    let id: ObjectIdentifier
    let eventLoop: any EventLoop
    let connection: NIOLoopBound<HTTPReplayConnection>

    /// Sends on the connection, hopping to its loop unless already there.
    func send(_ request: PendingRequest) {
        if eventLoop.inEventLoop {
            connection.value.send(request)
        } else {
            eventLoop.execute { connection.value.send(request) }
        }
    }

    func close() {
        eventLoop.execute { connection.value.closeChannel() }
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
        self.framer = HTTPResponseFramer(
            keepsRaw: output.options.trackResponses, rawLimit: output.options.responseBufferSize)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        handle = ReplayConnectionHandle(
            id: ObjectIdentifier(self), eventLoop: context.eventLoop,
            connection: NIOLoopBound(self, eventLoop: context.eventLoop))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handle = nil // the handle refers back to this handler
        self.context = nil
    }

    func closeChannel() {
        context?.close(promise: nil)
    }

    func send(_ request: PendingRequest) {
        holdsSlot = true
        guard let context, context.channel.isActive, !ended else {
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
        sentAt = monotonicNanoseconds()
        if output.options.trackResponses { sentAtWall = wallNanoseconds() }
        deadline = sentAt + timeoutNanoseconds
        if timeoutCheck == nil {
            // One repeating check per connection is cheaper than a timer per request.
            let period = TimeAmount.milliseconds(max(10, min(250, output.options.timeout.nanoseconds / 4_000_000)))
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            timeoutCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
                bound.value.checkDeadline()
            }
        }
        context.writeAndFlush(wrapOutboundOut(request.bytes), promise: nil)
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
        guard let request = current else { return }
        current = nil
        served += 1
        let now = monotonicNanoseconds()
        let latency = now - sentAt
        batch.record(status: framer.statusCode, latency: latency)
        if batch.responses >= 64 || now - lastBatchFlush > 100_000_000 { flushBatch(now: now) }
        if output.options.trackResponses, let sink = output.responseSink {
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
            send(next)
        } else {
            holdsSlot = false
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
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
