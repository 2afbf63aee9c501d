#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A `[HOST]:PORT` address as given to `--input-raw` (or a replay target).
public struct CaptureAddress: Hashable, Sendable, CustomStringConvertible {
    /// Host name or IP literal; empty means every local address.
    public var host: String
    /// 0 means any port.
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`, `:PORT`, `[IPv6]:PORT` or a bare `PORT`.
    public init(parsing text: String) throws(CaptureError) {
        var hostPart = ""
        var portPart = text
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw .invalidAddress(text, reason: "missing ']' after the IPv6 address")
            }
            hostPart = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .invalidAddress(text, reason: "expected ':PORT' after ']'") }
            portPart = String(rest.dropFirst())
        } else if let colon = text.lastIndex(of: ":") {
            hostPart = String(text[..<colon])
            portPart = String(text[text.index(after: colon)...])
            if hostPart.contains(":") {
                throw .invalidAddress(text, reason: "write IPv6 addresses in brackets, e.g. [::1]:8080")
            }
        }
        guard let port = UInt16(portPart) else {
            throw .invalidAddress(text, reason: "'\(portPart)' is not a port number (0-65535)")
        }
        self.init(host: hostPart, port: port)
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The host's addresses: itself when it is an IP literal, else resolved.
    func resolvedAddresses() throws(CaptureError) -> [IPAddress] {
        if host.isEmpty { return [] }
        if let literal = IPAddress(host) { return [literal] }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0, let first = list else {
            throw .invalidAddress(
                description, reason: "cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var found: [IPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let sockaddr = entry.pointee.ai_addr {
                if entry.pointee.ai_family == AF_INET {
                    let bytes = sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin_addr) { Array($0) }
                    }
                    if let address = IPAddress(bytes: bytes), !found.contains(address) { found.append(address) }
                } else if entry.pointee.ai_family == AF_INET6 {
                    let bytes = sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
                    }
                    if let address = IPAddress(bytes: bytes), !found.contains(address) { found.append(address) }
                }
            }
            cursor = entry.pointee.ai_next
        }
        return found
    }
}

/// Options of `--input-raw` (and of reading a pcap file).
public struct RawInputOptions: Sendable {
    /// Where to capture: `HOST:PORT` or `:PORT`, one or more.
    public var addresses: [CaptureAddress]
    /// Also capture responses (`--input-raw-track-response`).
    public var trackResponse = false
    /// Idle time after which an incomplete message is given up
    /// (`--input-raw-expire`).
    public var expire: Duration = .seconds(2)
    /// Bytes captured per packet; large enough for 64 KiB offloaded segments.
    public var snaplen = 262_144
    /// Kernel capture buffer (`--input-raw-buffer-size`).
    public var bufferSize = 32 * 1024 * 1024
    /// pcap read timeout: how often an idle capture wakes to expire messages.
    public var readTimeout: Duration = .milliseconds(100)
    /// Deliver each packet at once instead of in blocks (at most
    /// `readTimeout` late). Off by default: on Linux it shrinks the ring to
    /// a few hundred large-snaplen slots and packets get dropped under load.
    public var immediateMode = false
    /// Replaces the generated BPF filter (`--input-raw-bpf-filter`).
    public var bpfFilter: String? = nil
    /// Emit messages that expired incomplete (`--input-raw-allow-incomplete`).
    public var allowIncomplete = false
    /// Insert `NAME: <client IP>` after the request line
    /// (`--input-raw-realip-header`).
    public var realIPHeader: String? = nil
    /// Replay targets: never captured, and an error if one is the captured
    /// address itself (replaying would loop).
    public var excludedDestinations: [CaptureAddress] = []
    /// Read this pcap file instead of capturing live (GoReplay's
    /// `pcap_file` engine).
    public var pcapFile: String? = nil
    /// Capture on these devices instead of choosing from the addresses.
    public var interfaces: [String] = []
    /// Remove `Expect: 100-continue` from captured requests, as GoReplay does.
    public var removeExpectContinue = true
    /// Largest message kept; larger ones are counted and skipped.
    public var maxMessageBytes = 64 * 1024 * 1024
    /// Largest header block.
    public var maxHeaderBytes = 64 * 1024
    /// Out-of-order bytes held per connection direction.
    public var maxReorderBytesPerDirection = 4 * 1024 * 1024
    /// All buffered bytes together.
    public var maxTotalBufferedBytes = 512 * 1024 * 1024
    /// Connections tracked at once.
    public var maxConnections = 100_000
    /// Messages waiting for the consumer; live capture counts and drops
    /// beyond this, file input waits.
    public var outputQueueLimit = 100_000

    public init(addresses: [CaptureAddress]) {
        self.addresses = addresses
    }

    /// Parses `--input-raw` values such as `127.0.0.1:8080` or `:80`.
    public init(addresses: [String]) throws(CaptureError) {
        var parsed: [CaptureAddress] = []
        for text in addresses { parsed.append(try CaptureAddress(parsing: text)) }
        self.init(addresses: parsed)
    }

    /// Throws `CaptureError.replayLoop` when a replay target is one of the
    /// captured addresses: its own replayed requests would be captured again.
    public func checkNoReplayLoop() throws(CaptureError) {
        for target in excludedDestinations {
            let targetAddresses = try target.resolvedAddresses()
            for captured in addresses where captured.port == 0 || captured.port == target.port {
                if captured.host.isEmpty {
                    // Every local address is captured: loopback or any local
                    // address of the target loops.
                    let local = Set(localAddresses())
                    if targetAddresses.contains(where: { $0.isLoopback || local.contains($0) }) {
                        throw .replayLoop(target: target.description, captured: captured.description)
                    }
                    continue
                }
                let capturedAddresses = try captured.resolvedAddresses()
                let overlap = targetAddresses.contains { target in
                    capturedAddresses.contains {
                        $0 == target || ($0.isLoopback && target.isLoopback && $0.isIPv6 == target.isIPv6)
                    }
                }
                if overlap || captured.host == target.host {
                    throw .replayLoop(target: target.description, captured: captured.description)
                }
            }
        }
    }

    func engineConfiguration() throws(CaptureError) -> CaptureEngineConfiguration {
        var configuration = CaptureEngineConfiguration()
        if !addresses.contains(where: { $0.port == 0 }) {
            configuration.serverPorts = Set(addresses.map(\.port))
        }
        if !addresses.contains(where: { $0.host.isEmpty }) {
            for address in addresses {
                for ip in try address.resolvedAddresses() { configuration.serverHosts.insert(ip) }
            }
        }
        for target in excludedDestinations {
            for ip in (try? target.resolvedAddresses()) ?? [] {
                configuration.excludedDestinations.insert(TCPEndpoint(address: ip, port: target.port))
            }
        }
        configuration.trackResponses = trackResponse
        configuration.expireNanoseconds = Self.nanoseconds(expire)
        configuration.connectionIdleNanoseconds = max(configuration.expireNanoseconds, 60_000_000_000)
        configuration.allowIncomplete = allowIncomplete
        configuration.realIPHeader = realIPHeader.flatMap { $0.isEmpty ? nil : $0 }
        configuration.removeExpectContinue = removeExpectContinue
        configuration.framerLimits = HTTPMessageFramer.Limits(
            maxHeaderBytes: maxHeaderBytes, maxMessageBytes: maxMessageBytes)
        configuration.maxReorderBytesPerDirection = maxReorderBytesPerDirection
        configuration.maxTotalBufferedBytes = maxTotalBufferedBytes
        configuration.maxConnections = maxConnections
        return configuration
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let parts = duration.components
        return parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000
    }
}
