import NIOCore

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

/// One pooled https connection: a channel handler confined to its channel's event loop, like
/// NIO's own handlers (not `Sendable`), behind NIOSSL's handler; the pool holds a
/// `ReplayConnectionHandle`. The replay rules are `ReplayExchange`'s; this does the channel's part.
final class HTTPReplayConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var exchange: ReplayExchange
    private var context: ChannelHandlerContext?
    private let hostBytes: [UInt8]
    /// Set by channelActive/channelInactive: asking the channel takes an
    /// existential call and an atomic load per request.
    private var isActive = false
    /// Requests are written into this one buffer: NIO lets go of it once the
    /// write is done, so the next request reuses its storage.
    private var sendBuffer = ByteBuffer()
    private var timeoutCheck: RepeatedTask?
    /// This connection for the pool; set while the handler is in its pipeline.
    private(set) var handle: ReplayConnectionHandle?

    init(output: HTTPOutput) {
        self.exchange = ReplayExchange(output: output)
        self.hostBytes = output.hostHeaderBytes
        exchange.connectionID = ObjectIdentifier(self)
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
        // The flag is the fast path; the channel has the last word when it is unset.
        let isOpen = context.map { isActive || $0.channel.isActive } ?? false
        guard let context, exchange.start(request, isOpen: isOpen, now: now) else { return }
        if timeoutCheck == nil {
            // One repeating check per connection is cheaper than a timer per request.
            let timeout = exchange.output.options.timeout.nanoseconds
            let period = TimeAmount.milliseconds(max(10, min(250, timeout / 4_000_000)))
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
        if exchange.timeOut(now: monotonicNanoseconds()) { context?.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch buffer.withUnsafeReadableBytes({ exchange.receive($0) }) {
        case .incomplete: break
        case .complete: completeCurrent(context: context)
        case .unreadable: context.close(promise: nil)
        }
    }

    private func completeCurrent(context: ChannelHandlerContext) {
        let now = monotonicNanoseconds()
        switch exchange.finishResponse(of: handle, now: now) {
        case .send(let next): send(next, now: now)
        case .idle: break
        case .close: context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        timeoutCheck?.cancel()
        timeoutCheck = nil
        exchange.closed(handle)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        exchange.noteFailure(exchange.output.describeChannelError(error))
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension HTTPReplayConnection: Sendable {}
