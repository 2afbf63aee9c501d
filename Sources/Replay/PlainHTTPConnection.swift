import CEpoll
import Foundation
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// One pooled plain-http connection on a `SocketLoop`: a non-blocking socket, the request written
/// with one `sendmsg` straight from the captured bytes, the response read into the loop's buffer
/// and framed by `ReplayExchange`, whose rules (keep-alive reuse, one retry of an idempotent
/// request on a stale connection, timeouts, close-delimited bodies) the https connection on NIO
/// follows too.
///
/// Confined to its loop's thread, like the NIO handler to its event loop; the pool holds a
/// `ReplayConnectionHandle`.
final class PlainHTTPConnection: SocketLoopClient {
    private enum Phase {
        case connecting
        case open
        case closed
    }

    private var exchange: ReplayExchange
    private let loop: SocketLoop
    private var phase = Phase.connecting
    private var fd: Int32 = -1
    /// Addresses not yet tried (a name can resolve to several).
    private var addresses: ArraySlice<SocketAddress>
    private var lastConnectErrno: Int32 = 0
    /// Sent once the socket connects.
    private var first: PendingRequest?
    private var connectDeadline: Int64
    private let hostBytes: [UInt8]
    /// The current request's bytes from `unsentOffset` on, when the socket did not take them at once.
    private var unsent: [UInt8] = []
    private var unsentOffset = 0

    private init(output: HTTPOutput, loop: SocketLoop, addresses: [SocketAddress], first: PendingRequest) {
        self.exchange = ReplayExchange(output: output)
        self.loop = loop
        self.addresses = addresses[...]
        self.first = first
        self.connectDeadline = monotonicNanoseconds() + output.options.timeout.nanoseconds
        self.hostBytes = output.hostHeaderBytes
        exchange.connectionID = ObjectIdentifier(self)
    }

    /// On `loop`: opens a connection to the first of `addresses` that accepts, then sends `first`.
    static func start(output: HTTPOutput, loop: SocketLoop, addresses: [SocketAddress], first: PendingRequest) {
        let connection = PlainHTTPConnection(output: output, loop: loop, addresses: addresses, first: first)
        connection.connectNext()
    }

    /// This connection as the pool holds it.
    var handle: ReplayConnectionHandle { ReplayConnectionHandle(SocketLoopBound(self, loop: loop)) }

    // MARK: Connecting

    private func connectNext() {
        guard let address = addresses.popFirst() else {
            failConnect(lastConnectErrno == 0 ? "no address to connect to" : Self.errorText(lastConnectErrno))
            return
        }
        let socketFD = socket(
            address.protocol.rawValue,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socketFD >= 0 else {
            failConnect(Self.errorText(errno))
            return
        }
        var one: Int32 = 1
        setsockopt(socketFD, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = address.withSockAddr { pointer, length in connect(socketFD, pointer, socklen_t(length)) }
        let connectErrno = errno
        if result != 0 && connectErrno != EINPROGRESS {
            close(socketFD)
            lastConnectErrno = connectErrno
            connectNext()
            return
        }
        guard loop.register(socketFD, events: SocketLoop.writable, client: self) else {
            let registerErrno = errno
            close(socketFD)
            failConnect(Self.errorText(registerErrno))
            return
        }
        fd = socketFD
        loop.noteDeadline(connectDeadline)
    }

    private func connected() {
        phase = .open
        loop.modify(fd, events: SocketLoop.readable)
        exchange.output.connectionOpened(handle)
        if let request = first {
            first = nil
            send(request)
        }
    }

    /// The connection never opened: the first request fails with `text`, and the pool's slot is freed.
    private func failConnect(_ text: String) {
        phase = .closed
        first = nil
        exchange.output.connectFailed(text)
    }

    // MARK: Events

    func socketReady(events: UInt32) {
        switch phase {
        case .connecting:
            // Connected, or refused, once the socket is writable or reports an error.
            guard events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 else { return }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error == 0 {
                connected()
            } else {
                loop.closeSocket(fd)
                fd = -1
                lastConnectErrno = error
                connectNext()
            }
        case .open:
            if events & EPOLLOUT.rawValue != 0, !unsent.isEmpty {
                writeUnsent()
                guard phase == .open else { return }
            }
            if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                readAvailable()
            }
        case .closed:
            return
        }
    }

    func checkDeadline(now: Int64) -> Int64 {
        switch phase {
        case .connecting:
            guard now >= connectDeadline else { return connectDeadline }
            loop.closeSocket(fd)
            fd = -1
            failConnect("connect timed out (--output-http-timeout)")
            return .max
        case .open:
            if exchange.timeOut(now: now) {
                closeConnection()
                return .max
            }
            return exchange.current == nil ? .max : exchange.deadline
        case .closed:
            return .max
        }
    }

    // MARK: Requests and responses

    /// Sends `request`, or hands it back to the pool when the connection has closed.
    func send(_ request: PendingRequest, now: Int64 = monotonicNanoseconds()) {
        guard exchange.start(request, isOpen: phase == .open, now: now) else { return }
        loop.noteDeadline(exchange.deadline)
        write(request)
    }

    /// One `sendmsg` from the captured bytes and the target's host; what the socket does not take
    /// now is copied and written when it is writable.
    private func write(_ request: PendingRequest) {
        let (sent, total, code) = request.payload.withUnsafeBytes { payload in
            hostBytes.withUnsafeBytes { host in
                withUnsafeBytes(of: UInt8(0x20)) { space in
                    withUnsafeTemporaryAllocation(of: iovec.self, capacity: 4) { vectors in
                        var parts = 0
                        var total = 0
                        func add(_ part: UnsafeRawBufferPointer) {
                            vectors[parts] = iovec(
                                iov_base: UnsafeMutableRawPointer(mutating: part.baseAddress), iov_len: part.count)
                            parts += 1
                            total += part.count
                        }
                        if let value = request.hostValue {
                            add(UnsafeRawBufferPointer(rebasing: payload[..<value.lowerBound]))
                            if request.hostNeedsSpace { add(space) }
                            add(host)
                            add(UnsafeRawBufferPointer(rebasing: payload[value.upperBound...]))
                        } else {
                            add(payload)
                        }
                        var message = msghdr()
                        message.msg_iov = vectors.baseAddress
                        message.msg_iovlen = parts
                        var sent = -1
                        repeat {
                            sent = Glibc.sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
                        } while sent < 0 && errno == EINTR
                        return (sent, total, sent < 0 ? errno : 0)
                    }
                }
            }
        }
        if sent == total { return }
        if sent < 0 && code != EAGAIN && code != EWOULDBLOCK {
            failed(errno: code)
            return
        }
        // The socket's buffer is full (rare for a request): keep the rest for when it drains.
        unsent = request.bytes(host: hostBytes)
        unsentOffset = max(0, sent)
        loop.modify(fd, events: SocketLoop.readable | SocketLoop.writable)
    }

    private func writeUnsent() {
        var written = -1
        repeat {
            written = unsent.withUnsafeBytes { bytes in
                Glibc.send(fd, bytes.baseAddress! + unsentOffset, bytes.count - unsentOffset, Int32(MSG_NOSIGNAL))
            }
        } while written < 0 && errno == EINTR
        if written < 0 {
            if errno != EAGAIN && errno != EWOULDBLOCK { failed(errno: errno) }
            return
        }
        unsentOffset += written
        if unsentOffset == unsent.count {
            unsent = []
            unsentOffset = 0
            loop.modify(fd, events: SocketLoop.readable)
        }
    }

    private func readAvailable() {
        let buffer = loop.readBuffer
        var count = -1
        repeat {
            count = read(fd, buffer.baseAddress, buffer.count)
        } while count < 0 && errno == EINTR
        if count == 0 {
            closeConnection()
            return
        }
        if count < 0 {
            if errno != EAGAIN && errno != EWOULDBLOCK { failed(errno: errno) }
            return
        }
        switch exchange.receive(UnsafeRawBufferPointer(rebasing: buffer[..<count])) {
        case .incomplete: break
        case .complete: completeCurrent()
        case .unreadable: closeConnection()
        }
    }

    private func completeCurrent() {
        let now = monotonicNanoseconds()
        // A server may answer before it has read the whole request (a 413, say): the rest of the
        // request would then be read as the next one, so the connection is not reused.
        switch exchange.finishResponse(of: handle, mustClose: !unsent.isEmpty, now: now) {
        case .send(let next): send(next, now: now)
        case .idle: break
        case .close: closeConnection()
        }
    }

    // MARK: Closing

    private func failed(errno code: Int32) {
        exchange.noteFailure("connection error: " + Self.errorText(code))
        closeConnection()
    }

    /// Closes the socket and settles the request in flight (`ReplayExchange.closed`). Also what
    /// the pool's `close` runs.
    func closeConnection() {
        switch phase {
        case .closed:
            return
        case .connecting:
            loop.closeSocket(fd)
            fd = -1
            failConnect("closed before it connected")
        case .open:
            phase = .closed
            loop.closeSocket(fd)
            fd = -1
            unsent = []
            unsentOffset = 0
            exchange.closed(handle)
        }
    }

    private static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code)).lowercased()
    }
}

@available(*, unavailable)
extension PlainHTTPConnection: Sendable {}
