import Foundation
import Replay
import Testing

@testable import Capture

/// A small deterministic generator (SplitMix64) so the fuzz loop is
/// reproducible.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

@Suite("Garbage packets")
struct GarbagePacketTests {
    @Test(
        "random bytes, truncated headers and mutated packets never crash capture",
        arguments: [LinkType.ethernet, .null, .linuxSLL, .linuxSLL2, .raw])
    func fuzz(linkType: LinkType) async throws {
        var random = SeededGenerator(state: 0x5eed_0000 + UInt64(linkType.rawValue))
        var tcp = TCPConversation()
        var valid = tcp.handshake()
        valid += tcp.send(
            fromClient: true, "POST /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".bytes,
            segmentSize: 9)
        valid += tcp.send(fromClient: false, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".bytes, segmentSize: 9)
        let header: [UInt8]
        switch linkType {
        case .ethernet: header = [UInt8](repeating: 0, count: 12) + [0x08, 0x00]
        case .null: header = [2, 0, 0, 0]
        case .linuxSLL: header = [UInt8](repeating: 0, count: 14) + [0x08, 0x00]
        case .linuxSLL2: header = [0x08, 0x00] + [UInt8](repeating: 0, count: 18)
        default: header = []
        }
        var records: [[UInt8]] = []
        for round in 0..<4000 {
            let base = header + valid[round % valid.count].ip
            switch round % 4 {
            case 0:
                records.append(
                    (0..<Int.random(in: 0...120, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                )
            case 1:
                records.append(Array(base.prefix(Int.random(in: 0...base.count, using: &random))))
            case 2:
                var mutated = base
                for _ in 0..<Int.random(in: 1...6, using: &random) {
                    mutated[Int.random(in: 0..<mutated.count, using: &random)] = UInt8.random(
                        in: 0...255, using: &random)
                }
                records.append(mutated)
            default:
                records.append(base)
            }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-\(UUID().uuidString).pcap").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PcapFileWriter.writeRaw(records, linkType: UInt32(linkType.rawValue), to: path)
        var options = RawInputOptions(addresses: [CaptureAddress(host: "", port: 0)])
        options.pcapFile = path
        options.trackResponse = true
        let input = try RawCaptureInput(options: options)
        var count = 0
        for try await _ in input.messages() { count += 1 }
        let statistics = input.statistics
        #expect(statistics.packetsSeen == records.count)
        #expect(statistics.packetsUndecodable > 0)
    }
}
