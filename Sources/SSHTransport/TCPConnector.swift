import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Opens a non-blocking TCP connection with `TCP_NODELAY` before a deadline (libssh2 does not connect).
enum TCPConnector {
    /// The socket an SSH session runs over: a direct TCP connection, or through `gateway` one end of
    /// a socketpair whose other end the gateway pumps into a `direct-tcpip` channel.
    static func open(
        to endpoint: SSHEndpoint, via gateway: SSHGateway?, deadline: ContinuousClock.Instant, reactor: SSHReactor
    ) async throws -> Int32 {
        if let gateway { return try await gateway.openTunnel(to: endpoint, deadline: deadline) }
        return try await connect(to: endpoint, deadline: deadline, reactor: reactor)
    }

    static func connect(
        to endpoint: SSHEndpoint, deadline: ContinuousClock.Instant, reactor: SSHReactor
    ) async throws -> Int32 {
        func failure(_ kind: SSHError.Kind, _ message: String, remedy: String? = nil) -> SSHError {
            SSHError(endpoint: endpoint, operation: .connect, kind: kind, message: message, remedy: remedy)
        }
        guard (1...65535).contains(endpoint.port) else {
            throw failure(.connectionFailed, "port \(endpoint.port) is out of range")
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        // getaddrinfo blocks; literal addresses and /etc/hosts names return at once.
        let gai = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard gai == 0, let first = list else {
            throw failure(
                .nameResolution, "cannot resolve \(endpoint.host): \(String(cString: gai_strerror(gai)))",
                remedy: "check the hostname")
        }
        defer { freeaddrinfo(list) }

        var lastErrno: Int32 = 0
        var current: UnsafeMutablePointer<addrinfo>? = first
        while let info = current {
            current = info.pointee.ai_next
            let fd = socket(
                info.pointee.ai_family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue),
                info.pointee.ai_protocol)
            if fd < 0 {
                lastErrno = errno
                continue
            }
            // Without this each SSH round trip can wait ~40 ms for Nagle + delayed ACK.
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
            guard errno == EINPROGRESS else {
                lastErrno = errno
                close(fd)
                continue
            }
            let outcome: SocketWaitOutcome
            do {
                outcome = try await reactor.waitForSocket(fd, events: Int16(POLLOUT), deadline: deadline)
            } catch {
                close(fd)
                throw error
            }
            if case .timedOut = outcome {
                close(fd)
                throw failure(
                    .connectTimeout, "TCP connect to \(endpoint.hostAndPort) did not complete in time",
                    remedy: "check the host is up and reachable, or raise the connect timeout")
            }
            var soError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
            if soError == 0 { return fd }
            lastErrno = soError
            close(fd)
        }
        let reason = String(cString: strerror(lastErrno))
        if lastErrno == EMFILE || lastErrno == ENFILE {
            throw failure(
                .connectionFailed,
                "cannot open a socket to \(endpoint.hostAndPort): \(reason) (\(openFileLimitText()))",
                remedy: "lower the parallelism (-P) or raise the open-file limit (ulimit -n)")
        }
        if lastErrno == ECONNREFUSED {
            throw failure(
                .connectionRefused, "connection to \(endpoint.hostAndPort) refused",
                remedy: "check sshd is running and listening on port \(endpoint.port)")
        }
        if lastErrno == ETIMEDOUT {
            throw failure(.connectTimeout, "TCP connect to \(endpoint.hostAndPort) timed out: \(reason)")
        }
        throw failure(.connectionFailed, "cannot connect to \(endpoint.hostAndPort): \(reason)")
    }
}

/// "limit N open files" from RLIMIT_NOFILE, for errors about running out of descriptors.
func openFileLimitText() -> String {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return "open-file limit unknown" }
    return "limit \(limit.rlim_cur) open files"
}
