import Foundation
import Replay

@testable import Capture

/// One crafted packet: IP header onwards, plus its capture time.
struct CraftedPacket {
    var timestamp: Int64 = 0
    var ip: [UInt8]
}

/// Writes classic pcap files (nanosecond variant) from crafted packets.
enum PcapFileWriter {
    enum Link {
        case ethernet
        /// BSD loopback: 4-byte host-order address family.
        case null
    }

    static func write(_ packets: [CraftedPacket], link: Link, to path: String) throws {
        var out: [UInt8] = []
        out += le32(0xa1b2_3c4d) // nanosecond-resolution magic
        out += le16(2) + le16(4)
        out += le32(0) + le32(0)
        out += le32(262_144)
        out += le32(link == .ethernet ? 1 : 0)
        for packet in packets {
            var frame: [UInt8]
            let isIPv6 = packet.ip.first.map { $0 >> 4 == 6 } ?? false
            switch link {
            case .ethernet:
                frame = [UInt8](repeating: 0, count: 12) + (isIPv6 ? [0x86, 0xdd] : [0x08, 0x00])
            case .null:
                frame = le32(isIPv6 ? 10 : 2)
            }
            frame += packet.ip
            out += le32(UInt32(packet.timestamp / 1_000_000_000))
            out += le32(UInt32(packet.timestamp % 1_000_000_000))
            out += le32(UInt32(frame.count)) + le32(UInt32(frame.count))
            out += frame
        }
        try Data(out).write(to: URL(fileURLWithPath: path))
    }

    /// Writes raw records (arbitrary bytes) for fuzzing.
    static func writeRaw(_ records: [[UInt8]], linkType: UInt32, to path: String) throws {
        var out: [UInt8] = le32(0xa1b2_3c4d) + le16(2) + le16(4) + le32(0) + le32(0) + le32(262_144) + le32(linkType)
        for (index, record) in records.enumerated() {
            out +=
                le32(1_700_000_000) + le32(UInt32(index)) + le32(UInt32(record.count))
                + le32(UInt32(record.count + index % 3))
            out += record
        }
        try Data(out).write(to: URL(fileURLWithPath: path))
    }

    static func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xff), UInt8(value >> 8)] }
    static func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xff) } }
}

/// Builds the packets of one TCP connection, keeping sequence numbers right.
struct TCPConversation {
    var client: (ip: [UInt8], port: UInt16)
    var server: (ip: [UInt8], port: UInt16)
    var clientSequence: UInt32
    var serverSequence: UInt32

    init(
        clientIP: [UInt8] = [10, 0, 0, 1], clientPort: UInt16 = 40_000, serverIP: [UInt8] = [10, 0, 0, 2],
        serverPort: UInt16 = 8080,
        clientISN: UInt32 = 1_000, serverISN: UInt32 = 5_000_000
    ) {
        client = (clientIP, clientPort)
        server = (serverIP, serverPort)
        clientSequence = clientISN
        serverSequence = serverISN
    }

    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, psh: UInt8 = 0x08, ack: UInt8 = 0x10

    func packet(fromClient: Bool, flags: UInt8, sequence: UInt32, acknowledgement: UInt32, payload: [UInt8])
        -> CraftedPacket
    {
        let source = fromClient ? client : server
        let destination = fromClient ? server : client
        var tcp: [UInt8] = be16(source.port) + be16(destination.port) + be32(sequence) + be32(acknowledgement)
        tcp += [0x50, flags] + be16(65_535) + [0, 0, 0, 0]
        tcp += payload
        var ip: [UInt8]
        if source.ip.count == 4 {
            ip = [0x45, 0] + be16(UInt16(20 + tcp.count)) + [0, 0, 0x40, 0, 64, 6, 0, 0] + source.ip + destination.ip
        } else {
            ip = [0x60, 0, 0, 0] + be16(UInt16(tcp.count)) + [6, 64] + source.ip + destination.ip
        }
        return CraftedPacket(ip: ip + tcp)
    }

    /// SYN, SYN-ACK, ACK.
    mutating func handshake() -> [CraftedPacket] {
        let packets = [
            packet(fromClient: true, flags: Self.syn, sequence: clientSequence, acknowledgement: 0, payload: []),
            packet(
                fromClient: false, flags: Self.syn | Self.ack, sequence: serverSequence,
                acknowledgement: clientSequence &+ 1, payload: []),
            packet(
                fromClient: true, flags: Self.ack, sequence: clientSequence &+ 1, acknowledgement: serverSequence &+ 1,
                payload: []),
        ]
        clientSequence &+= 1
        serverSequence &+= 1
        return packets
    }

    /// Data from one side cut into segments of at most `segmentSize`.
    mutating func send(fromClient: Bool, _ bytes: [UInt8], segmentSize: Int = 1_460) -> [CraftedPacket] {
        var packets: [CraftedPacket] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + segmentSize)
            let chunk = Array(bytes[offset..<end])
            if fromClient {
                packets.append(
                    packet(
                        fromClient: true, flags: Self.ack | Self.psh, sequence: clientSequence,
                        acknowledgement: serverSequence, payload: chunk))
                clientSequence &+= UInt32(chunk.count)
            } else {
                packets.append(
                    packet(
                        fromClient: false, flags: Self.ack | Self.psh, sequence: serverSequence,
                        acknowledgement: clientSequence, payload: chunk))
                serverSequence &+= UInt32(chunk.count)
            }
            offset = end
        }
        return packets
    }

    /// A pure ACK from one side acknowledging everything the other sent.
    func acknowledge(fromClient: Bool) -> CraftedPacket {
        fromClient
            ? packet(
                fromClient: true, flags: Self.ack, sequence: clientSequence, acknowledgement: serverSequence,
                payload: [])
            : packet(
                fromClient: false, flags: Self.ack, sequence: serverSequence, acknowledgement: clientSequence,
                payload: [])
    }

    /// FIN from both sides.
    mutating func close() -> [CraftedPacket] {
        let packets = [
            packet(
                fromClient: true, flags: Self.fin | Self.ack, sequence: clientSequence, acknowledgement: serverSequence,
                payload: []),
            packet(
                fromClient: false, flags: Self.fin | Self.ack, sequence: serverSequence,
                acknowledgement: clientSequence &+ 1, payload: []),
            packet(
                fromClient: true, flags: Self.ack, sequence: clientSequence &+ 1, acknowledgement: serverSequence &+ 1,
                payload: []),
        ]
        clientSequence &+= 1
        serverSequence &+= 1
        return packets
    }

    private func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }
    private func be32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }
}

/// Result of running capture over a crafted file.
struct CaptureRun {
    var messages: [ReplayMessage]
    var statistics: CaptureStatistics

    var requests: [ReplayMessage] { messages.filter { $0.type == .request } }
    var responses: [ReplayMessage] { messages.filter { $0.type == .response } }
}

enum CraftedCapture {
    /// Base capture time of crafted packets: 2023-11-14T22:13:20Z.
    static let baseTime: Int64 = 1_700_000_000_000_000_000

    /// Stamps packets 1 ms apart in the given order, writes them to a
    /// temporary pcap file and reads it back through `RawCaptureInput`.
    static func run(
        _ packets: [CraftedPacket], link: PcapFileWriter.Link = .ethernet, port: UInt16 = 8080,
        configure: (inout RawInputOptions) -> Void = { _ in }
    ) async throws -> CaptureRun {
        var stamped = packets
        for index in stamped.indices { stamped[index].timestamp = baseTime + Int64(index) * 1_000_000 }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("capture-\(UUID().uuidString).pcap")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PcapFileWriter.write(stamped, link: link, to: path)
        var options = RawInputOptions(addresses: [CaptureAddress(host: "", port: port)])
        options.pcapFile = path
        configure(&options)
        let input = try RawCaptureInput(options: options)
        var messages: [ReplayMessage] = []
        for try await message in input.messages() { messages.append(message) }
        for _ in 0..<100 where input.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        return CaptureRun(messages: messages, statistics: input.statistics)
    }
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

extension Array where Element == UInt8 {
    var text: String { String(decoding: self, as: UTF8.self) }
}
