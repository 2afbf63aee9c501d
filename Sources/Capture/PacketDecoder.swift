/// An IPv4 or IPv6 address as captured, kept as raw bytes so that hashing and
/// comparing connection keys is cheap.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6.
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses dotted IPv4 or textual IPv6 (`::1`, `fe80::1`); nil otherwise.
    public init?(_ text: String) {
        if let v4 = IPAddress.parseIPv4(text) {
            bytes = v4
        } else if let v6 = IPAddress.parseIPv6(text) {
            bytes = v6
        } else {
            return nil
        }
    }

    public var isIPv6: Bool { bytes.count == 16 }

    /// True for 127.0.0.0/8 and ::1.
    public var isLoopback: Bool {
        if bytes.count == 4 { return bytes[0] == 127 }
        return bytes[0..<15].allSatisfy { $0 == 0 } && bytes[15] == 1
    }

    /// The 32 bits GoReplay puts in a message id: the IPv4 address, or the
    /// last four bytes of an IPv6 address.
    var idBits: UInt32 {
        let tail = bytes.suffix(4)
        return tail.reduce(0) { $0 << 8 | UInt32($1) }
    }

    public var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        var groups: [String] = []
        for i in stride(from: 0, to: 16, by: 2) {
            groups.append(String(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]), radix: 16))
        }
        return groups.joined(separator: ":")
    }

    private static func parseIPv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, let value = UInt8(part) else { return nil }
            out.append(value)
        }
        return out
    }

    private static func parseIPv6(_ text: String) -> [UInt8]? {
        guard text.contains(":") else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard !group.isEmpty, group.count <= 4, let value = UInt16(group, radix: 16) else { return nil }
                out.append(value)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }
}

/// One end of a TCP connection.
public struct TCPEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public var description: String {
        address.isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}

/// TCP header flags the reassembler cares about.
struct TCPFlags: OptionSet, Sendable {
    let rawValue: UInt8
    static let fin = TCPFlags(rawValue: 0x01)
    static let syn = TCPFlags(rawValue: 0x02)
    static let rst = TCPFlags(rawValue: 0x04)
    static let ack = TCPFlags(rawValue: 0x10)
}

/// A decoded TCP segment: addresses, sequence numbers and where its payload
/// lies within the captured packet bytes.
struct TCPSegment {
    var source: TCPEndpoint
    var destination: TCPEndpoint
    var sequence: UInt32
    var acknowledgement: UInt32
    var flags: TCPFlags
    /// Payload range within the packet buffer (only the captured part).
    var payload: Range<Int>
    /// Payload bytes on the wire that the snap length cut off.
    var truncatedBytes: Int
}

/// Link-layer header types this decoder understands (pcap `LINKTYPE_*`).
enum LinkType: Int32 {
    /// BSD loopback: 4-byte address family in host byte order.
    case null = 0
    case ethernet = 1
    /// Raw IP (DLT_RAW on most platforms is 12, the file link type is 101).
    case raw = 101
    case rawAlternative = 12
    /// OpenBSD loopback: 4-byte address family in network byte order.
    case loop = 108
    case linuxSLL = 113
    case linuxSLL2 = 276
    case ipv4 = 228
    case ipv6 = 229
}

/// Why a packet could not be decoded; counted, never fatal.
enum PacketDecodeFailure: Error {
    /// Too short for the headers it claims.
    case truncated
    /// Not IPv4/IPv6 carrying TCP (ARP, UDP, ...), or an IP fragment.
    case notTCP
}

/// Decodes link, IP and TCP headers without copying the payload.
struct PacketDecoder {
    let linkType: LinkType

    /// `bytes` is the captured part of the packet; `wireLength` its length on
    /// the wire (larger when the snap length cut it).
    func decode(_ bytes: UnsafeRawBufferPointer, wireLength: Int) -> Result<TCPSegment, PacketDecodeFailure> {
        var offset = 0
        var ipVersionHint: UInt8? = nil
        switch linkType {
        case .null, .loop:
            guard bytes.count >= 4 else { return .failure(.truncated) }
            // The family is host-order for .null; accept either order and the
            // three IPv6 values BSDs use (24, 28, 30).
            let family = linkType == .loop ? bytes.readBE32(0) : bytes.readLE32(0)
            let normalized = family > 0xffff ? family.byteSwapped : family
            switch normalized {
            case 2: ipVersionHint = 4
            case 10, 24, 28, 30: ipVersionHint = 6
            default: return .failure(.notTCP)
            }
            offset = 4
        case .ethernet:
            guard bytes.count >= 14 else { return .failure(.truncated) }
            var etherType = bytes.readBE16(12)
            offset = 14
            // 802.1Q / 802.1ad VLAN tags.
            while etherType == 0x8100 || etherType == 0x88a8 {
                guard bytes.count >= offset + 4 else { return .failure(.truncated) }
                etherType = bytes.readBE16(offset + 2)
                offset += 4
            }
            guard let version = Self.ipVersion(etherType: etherType) else { return .failure(.notTCP) }
            ipVersionHint = version
        case .linuxSLL:
            guard bytes.count >= 16 else { return .failure(.truncated) }
            guard let version = Self.ipVersion(etherType: bytes.readBE16(14)) else { return .failure(.notTCP) }
            ipVersionHint = version
            offset = 16
        case .linuxSLL2:
            guard bytes.count >= 20 else { return .failure(.truncated) }
            guard let version = Self.ipVersion(etherType: bytes.readBE16(0)) else { return .failure(.notTCP) }
            ipVersionHint = version
            offset = 20
        case .raw, .rawAlternative, .ipv4, .ipv6:
            offset = 0
        }
        let ipLost = max(0, wireLength - bytes.count)
        return decodeIP(bytes, at: offset, expectedVersion: ipVersionHint, lostBytes: ipLost)
    }

    private static func ipVersion(etherType: UInt16) -> UInt8? {
        switch etherType {
        case 0x0800: return 4
        case 0x86dd: return 6
        default: return nil
        }
    }

    private func decodeIP(_ bytes: UnsafeRawBufferPointer, at start: Int, expectedVersion: UInt8?, lostBytes: Int)
        -> Result<TCPSegment, PacketDecodeFailure>
    {
        guard bytes.count > start else { return .failure(.truncated) }
        let version = bytes[start] >> 4
        if let expectedVersion, expectedVersion != version { return .failure(.notTCP) }
        let source: IPAddress
        let destination: IPAddress
        var tcpStart: Int
        var ipEnd: Int // end of the IP packet within the captured bytes
        var ipWireEnd: Int // end of the IP packet had nothing been cut
        switch version {
        case 4:
            guard bytes.count >= start + 20 else { return .failure(.truncated) }
            let headerLength = Int(bytes[start] & 0x0f) * 4
            guard headerLength >= 20, bytes.count >= start + headerLength else { return .failure(.truncated) }
            guard bytes[start + 9] == 6 else { return .failure(.notTCP) }
            // Fragments (more-fragments flag or an offset) are not reassembled.
            let fragment = bytes.readBE16(start + 6)
            guard fragment & 0x3fff == 0 else { return .failure(.notTCP) }
            var totalLength = Int(bytes.readBE16(start + 2))
            // Segmentation offload can leave total length 0 on big packets.
            if totalLength == 0 { totalLength = bytes.count - start + lostBytes }
            guard totalLength >= headerLength else { return .failure(.truncated) }
            source = IPAddress(unchecked: bytes, start + 12, 4)
            destination = IPAddress(unchecked: bytes, start + 16, 4)
            tcpStart = start + headerLength
            ipWireEnd = start + totalLength
            ipEnd = min(ipWireEnd, bytes.count)
        case 6:
            guard bytes.count >= start + 40 else { return .failure(.truncated) }
            let payloadLength = Int(bytes.readBE16(start + 4))
            source = IPAddress(unchecked: bytes, start + 8, 16)
            destination = IPAddress(unchecked: bytes, start + 24, 16)
            ipWireEnd = start + 40 + (payloadLength == 0 ? bytes.count - start - 40 + lostBytes : payloadLength)
            ipEnd = min(ipWireEnd, bytes.count)
            var next = bytes[start + 6]
            tcpStart = start + 40
            // Skip extension headers; fragments are not reassembled.
            var hops = 0
            while next != 6 {
                hops += 1
                guard hops < 8 else { return .failure(.notTCP) }
                switch next {
                case 0, 43, 60:
                    guard ipEnd >= tcpStart + 8 else { return .failure(.truncated) }
                    let length = (Int(bytes[tcpStart + 1]) + 1) * 8
                    next = bytes[tcpStart]
                    tcpStart += length
                default:
                    return .failure(.notTCP)
                }
            }
        default:
            return .failure(.notTCP)
        }
        guard ipEnd >= tcpStart + 20 else { return .failure(.truncated) }
        let dataOffset = Int(bytes[tcpStart + 12] >> 4) * 4
        guard dataOffset >= 20, ipEnd >= tcpStart + dataOffset else { return .failure(.truncated) }
        let segment = TCPSegment(
            source: TCPEndpoint(address: source, port: bytes.readBE16(tcpStart)),
            destination: TCPEndpoint(address: destination, port: bytes.readBE16(tcpStart + 2)),
            sequence: bytes.readBE32(tcpStart + 4),
            acknowledgement: bytes.readBE32(tcpStart + 8),
            flags: TCPFlags(rawValue: bytes[tcpStart + 13] & 0x17),
            payload: (tcpStart + dataOffset)..<ipEnd,
            truncatedBytes: max(0, ipWireEnd - ipEnd))
        return .success(segment)
    }
}

extension IPAddress {
    fileprivate init(unchecked bytes: UnsafeRawBufferPointer, _ start: Int, _ count: Int) {
        self.bytes = Array(bytes[start..<(start + count)])
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always) func readBE16(_ offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }
    @inline(__always) func readBE32(_ offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8
            | UInt32(self[offset + 3])
    }
    @inline(__always) func readLE32(_ offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16 | UInt32(self[offset + 3])
            << 24
    }
}
