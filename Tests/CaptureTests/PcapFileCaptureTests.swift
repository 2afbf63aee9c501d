import Foundation
import Replay
import Testing

@testable import Capture

@Suite("Capture from crafted pcap files")
struct PcapFileCaptureTests {
    static let get = "GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n"
    static let ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

    static func post(_ path: String, bodySize: Int) -> String {
        let body = (0..<bodySize).map { String(UnicodeScalar(UInt8(97 + $0 % 26))) }.joined()
        return "POST \(path) HTTP/1.1\r\nHost: example\r\nContent-Length: \(bodySize)\r\n\r\n" + body
    }

    @Test("a request and its response: GoReplay ids, timestamps and latency")
    func idsAndTimestamps() async throws {
        var tcp = TCPConversation(
            clientIP: [192, 168, 1, 20], clientPort: 0xabcd, serverPort: 8080, clientISN: 100, serverISN: 0x1234_5678)
        var packets = tcp.handshake()
        packets += tcp.send(fromClient: true, Self.get.bytes, segmentSize: 20)
        let requestAck = tcp.serverSequence
        packets += tcp.send(fromClient: false, Self.ok.bytes)
        packets += tcp.close()
        let run = try await CraftedCapture.run(packets) { $0.trackResponse = true }
        let request = try #require(run.requests.first)
        let response = try #require(run.responses.first)
        #expect(run.requests.count == 1 && run.responses.count == 1)
        #expect(request.payload.text == Self.get)
        #expect(response.payload.text == Self.ok)
        // clientPort<<48 | serverPort<<32 | client IPv4, then the request's ACK.
        let expectedID = "abcd" + "1f90" + "c0a80114" + String(format: "%08x", requestAck)
        #expect(request.id == expectedID)
        #expect(response.id == expectedID)
        // Packets are 1 ms apart; the request's data starts at packet 3 and
        // spans three 20-byte segments.
        #expect(request.timestamp == CraftedCapture.baseTime + 3_000_000)
        #expect(request.latency == 2_000_000)
        #expect(response.timestamp == CraftedCapture.baseTime + 6_000_000)
        #expect(response.latency == 0)
        #expect(run.statistics.connectionsTracked == 1)
        #expect(run.statistics.messagesGivenUpTotal == 0)
    }

    @Test("segments captured out of order are put back in sequence")
    func reordering() async throws {
        var tcp = TCPConversation()
        var packets = tcp.handshake()
        let request = Self.post("/reorder", bodySize: 5000)
        var data = tcp.send(fromClient: true, request.bytes, segmentSize: 700)
        data.reverse()
        packets += data
        packets += tcp.send(fromClient: true, Self.get.bytes)
        let run = try await CraftedCapture.run(packets)
        #expect(run.requests.map(\.payload.text) == [request, Self.get])
        #expect(run.statistics.segmentsOutOfOrder > 0)
        #expect(run.statistics.messagesGivenUpTotal == 0)
    }

    @Test("retransmissions and overlapping segments are trimmed")
    func retransmissionAndOverlap() async throws {
        var tcp = TCPConversation()
        var packets = tcp.handshake()
        let request = Self.post("/retx", bodySize: 3000)
        let start = tcp.clientSequence
        let bytes = request.bytes
        let data = tcp.send(fromClient: true, bytes, segmentSize: 1000)
        packets += [data[0], data[0], data[1]]
        // An overlapping segment covering the end of #1 and start of #2.
        packets.append(
            tcp.packet(
                fromClient: true, flags: TCPConversation.ack, sequence: start &+ 1500,
                acknowledgement: tcp.serverSequence, payload: Array(bytes[1500..<2500])))
        packets += Array(data[2...])
        packets += [data[1]]
        packets += tcp.send(fromClient: true, Self.get.bytes)
        let run = try await CraftedCapture.run(packets)
        #expect(run.requests.map(\.payload.text) == [request, Self.get])
        #expect(run.statistics.bytesRetransmitted >= 1000 + 1000 + 1000)
        #expect(run.statistics.messagesGivenUpTotal == 0)
    }

    @Test("a lost segment: the server's ACK proves the gap permanent; it is counted and the next request still arrives")
    func lossDetectedByAck() async throws {
        var tcp = TCPConversation()
        var packets = tcp.handshake()
        let lost = Self.post("/lost", bodySize: 4000)
        var data = tcp.send(fromClient: true, lost.bytes, segmentSize: 1000)
        data.remove(at: 2)
        packets += data
        packets.append(tcp.acknowledge(fromClient: false))
        packets += tcp.send(fromClient: false, Self.ok.bytes)
        packets += tcp.send(fromClient: true, Self.get.bytes)
        packets += tcp.send(fromClient: false, Self.ok.bytes)
        let run = try await CraftedCapture.run(packets) { $0.trackResponse = true }
        #expect(run.requests.map(\.payload.text) == [Self.get])
        #expect(run.responses.count == 2)
        #expect(run.statistics.messagesGivenUp[.sequenceGap] == 1)
        #expect(run.statistics.bytesGivenUp > 0)
    }

    @Test("a gap that nothing fills is given up at expiry when responses are not captured")
    func lossDetectedByExpiry() async throws {
        var tcp = TCPConversation()
        var packets = tcp.handshake()
        var data = tcp.send(fromClient: true, Self.post("/lost", bodySize: 3000).bytes, segmentSize: 1000)
        data.remove(at: 1)
        packets += data
        // 3 s of silence (idle packets of another connection keep time moving).
        var other = TCPConversation(clientPort: 41_000)
        packets += other.handshake()
        for _ in 0..<3000 { packets.append(other.acknowledge(fromClient: true)) }
        packets += tcp.send(fromClient: true, Self.get.bytes)
        let run = try await CraftedCapture.run(packets)
        #expect(run.requests.map(\.payload.text) == [Self.get])
        #expect(run.statistics.messagesGivenUp[.sequenceGap] == 1)
    }

    @Test("a connection first seen mid-stream resynchronises on the next request")
    func midStream() async throws {
        var tcp = TCPConversation()
        let partial = Self.post("/partial", bodySize: 3000).bytes
        let data = tcp.send(fromClient: true, partial, segmentSize: 1000)
        var packets = Array(data[1...])
        packets += tcp.send(fromClient: true, Self.get.bytes)
        packets += tcp.send(fromClient: true, Self.post("/next", bodySize: 10).bytes)
        let run = try await CraftedCapture.run(packets)
        #expect(run.requests.map(\.payload.text) == [Self.get, Self.post("/next", bodySize: 10)])
        #expect(run.statistics.connectionsSeenMidStream == 1)
        #expect(run.statistics.bytesGivenUp == partial.count - 1000)
    }

    @Test("pipelined requests and responses pair up in order")
    func pipelining() async throws {
        var tcp = TCPConversation()
        var packets = tcp.handshake()
        let requests = ["GET /1 HTTP/1.1\r\n\r\n", "HEAD /2 HTTP/1.1\r\n\r\n", Self.post("/3", bodySize: 20)]
        let responses = [
            Self.ok, "HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n",
            "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        ]
        let requestAck = tcp.serverSequence
        packets += tcp.send(fromClient: true, requests.joined().bytes)
        packets += tcp.send(fromClient: false, responses.joined().bytes, segmentSize: 30)
        let run = try await CraftedCapture.run(packets) { $0.trackResponse = true }
        #expect(run.requests.map(\.payload.text) == requests)
        #expect(run.responses.map(\.payload.text) == responses)
        // All three requests share one segment, hence one ACK: the first
        // keeps GoReplay's id, the others use their sequence number so ids
        // stay unique; each response carries its own request's id.
        #expect(run.responses.map(\.id) == run.requests.map(\.id))
        #expect(Set(run.requests.map(\.id)).count == 3)
        #expect(run.requests[0].id.hasSuffix(String(format: "%08x", requestAck)))
    }

    @Test("chunked bodies split across segments, both directions")
    func chunkedAcrossSegments() async throws {
        var tcp = TCPConversation()
        var packets = tcp.handshake()
        let request =
            "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n"
        let response =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
        packets += tcp.send(fromClient: true, request.bytes, segmentSize: 3)
        packets += tcp.send(fromClient: false, response.bytes, segmentSize: 4)
        let run = try await CraftedCapture.run(packets) { $0.trackResponse = true }
        #expect(run.requests.map(\.payload.text) == [request])
        #expect(run.responses.map(\.payload.text) == [response])
    }

    @Test("100-continue with a 60-byte interim response: request whole, Expect removed, final response paired")
    func expectContinue() async throws {
        var tcp = TCPConversation()
        var packets = tcp.handshake()
        let head = "PUT /upload HTTP/1.1\r\nHost: example\r\nExpect: 100-continue\r\nContent-Length: 2000\r\n\r\n"
        let body = String(repeating: "b", count: 2000)
        let interim = "HTTP/1.1 100 Continue\r\nX-Server-Note: keep sending please\r\n\r\n"
        #expect(interim.utf8.count != 25)
        packets += tcp.send(fromClient: true, head.bytes)
        packets += tcp.send(fromClient: false, interim.bytes)
        packets += tcp.send(fromClient: true, body.bytes, segmentSize: 700)
        packets += tcp.send(fromClient: false, Self.ok.bytes)
        let run = try await CraftedCapture.run(packets) { $0.trackResponse = true }
        let expected = head.replacingOccurrences(of: "Expect: 100-continue\r\n", with: "") + body
        #expect(run.requests.map(\.payload.text) == [expected])
        #expect(run.responses.map(\.payload.text) == [Self.ok])
        #expect(run.responses.first?.id == run.requests.first?.id)
        #expect(run.statistics.interimResponsesSkipped == 1)
    }

    @Test("responses to HEAD, 304 and a close-delimited response")
    func bodilessAndCloseDelimited() async throws {
        var tcp = TCPConversation()
        var packets = tcp.handshake()
        let requests = [
            "HEAD /h HTTP/1.1\r\n\r\n", "GET /cached HTTP/1.1\r\nIf-None-Match: \"x\"\r\n\r\n",
            "GET /stream HTTP/1.0\r\n\r\n",
        ]
        let responses = [
            "HTTP/1.1 200 OK\r\nContent-Length: 9999\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + String(repeating: "s", count: 3000),
        ]
        for (request, response) in zip(requests, responses) {
            packets += tcp.send(fromClient: true, request.bytes)
            packets += tcp.send(fromClient: false, response.bytes)
        }
        packets += tcp.close()
        let run = try await CraftedCapture.run(packets) { $0.trackResponse = true }
        #expect(run.requests.map(\.payload.text) == requests)
        #expect(run.responses.map(\.payload.text) == responses)
        #expect(run.statistics.messagesGivenUpTotal == 0)
        #expect(run.statistics.connectionsActive == 0)
    }

    @Test("IPv6 over a BSD loopback link header, with the X-Real-IP header inserted")
    func ipv6() async throws {
        let client: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 10) + [0xbe, 0xef]
        let server: [UInt8] = [UInt8](repeating: 0, count: 15) + [1]
        var tcp = TCPConversation(clientIP: client, clientPort: 50_000, serverIP: server, serverPort: 8080)
        var packets = tcp.handshake()
        packets += tcp.send(fromClient: true, Self.get.bytes)
        let run = try await CraftedCapture.run(packets, link: .null) { $0.realIPHeader = "X-Real-IP" }
        let request = try #require(run.requests.first)
        #expect(
            request.payload.text
                == "GET /index.html HTTP/1.1\r\nX-Real-IP: 2001:db8:0:0:0:0:0:beef\r\nHost: example\r\n\r\n")
        #expect(request.id.hasPrefix("c350" + "1f90" + "0000beef"))
    }

    @Test("an incomplete request at the end of the file is counted, or emitted with allow-incomplete")
    func inputEnded() async throws {
        var tcp = TCPConversation()
        var packets = tcp.handshake()
        packets += tcp.send(fromClient: true, Array(Self.post("/cut", bodySize: 500).bytes.prefix(100)))
        let strict = try await CraftedCapture.run(packets)
        #expect(strict.requests.isEmpty)
        #expect(strict.statistics.messagesGivenUp[.inputEnded] == 1)
        let lenient = try await CraftedCapture.run(packets) { $0.allowIncomplete = true }
        #expect(lenient.requests.count == 1)
        #expect(lenient.statistics.incompleteMessagesEmitted == 1)
    }

    @Test("packets of replay targets are never captured")
    func excludedTargets() async throws {
        var ours = TCPConversation(serverIP: [10, 0, 0, 2], serverPort: 8080)
        var replay = TCPConversation(clientPort: 45_000, serverIP: [10, 0, 0, 9], serverPort: 8080)
        var packets = ours.handshake() + replay.handshake()
        packets += ours.send(fromClient: true, Self.get.bytes)
        packets += replay.send(fromClient: true, Self.get.bytes)
        let run = try await CraftedCapture.run(packets) {
            $0.excludedDestinations = [CaptureAddress(host: "10.0.0.9", port: 8080)]
        }
        #expect(run.requests.count == 1)
        #expect(run.statistics.packetsIgnored >= 4)
    }

    @Test("replaying to the captured address is refused as a loop")
    func replayLoop() throws {
        var options = try RawInputOptions(addresses: ["127.0.0.1:8080"])
        options.excludedDestinations = [try CaptureAddress(parsing: "localhost:8080")]
        #expect(throws: CaptureError.self) { try RawCaptureInput(options: options) }
        options.excludedDestinations = [try CaptureAddress(parsing: "127.0.0.1:9090")]
        #expect(throws: Never.self) { try RawCaptureInput(options: options) }
    }

    @Test("bad addresses and files give located errors")
    func badInput() async throws {
        #expect(throws: CaptureError.self) { try CaptureAddress(parsing: "localhost:http") }
        #expect(throws: CaptureError.self) { try CaptureAddress(parsing: "::1:80") }
        #expect(try CaptureAddress(parsing: "[::1]:80") == CaptureAddress(host: "::1", port: 80))
        var options = RawInputOptions(addresses: [CaptureAddress(host: "", port: 80)])
        options.pcapFile = "/nonexistent/file.pcap"
        let input = try RawCaptureInput(options: options)
        await #expect(throws: CaptureError.self) {
            for try await _ in input.messages() {}
        }
    }
}
