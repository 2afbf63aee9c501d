import NIOCore
import NIOPosix
import Testing

@testable import PuppetDB

/// A real TCP server on 127.0.0.1 that misbehaves in one chosen way.
struct MisbehavingServer {
    enum Behaviour: Sendable {
        /// Reply with these raw bytes after the request arrives, then close.
        case reply(String)
        /// Accept, read, never answer.
        case stall
        /// Send these bytes (the start of an answer), then never send more nor close.
        case trickle(String)
        /// Close as soon as the request arrives.
        case hangUp
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let behaviour: Behaviour
        var answered = false
        init(_ behaviour: Behaviour) { self.behaviour = behaviour }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !answered else { return }
            answered = true
            switch behaviour {
            case .reply(let text):
                let buffer = context.channel.allocator.buffer(string: text)
                let channel = context.channel
                context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in channel.close(promise: nil) }
            case .stall:
                break
            case .trickle(let text):
                context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: text)), promise: nil)
            case .hangUp:
                context.close(promise: nil)
            }
        }
    }

    let channel: any Channel

    init(_ behaviour: Behaviour) async throws {
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(behaviour))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var url: String { "http://127.0.0.1:\(channel.localAddress?.port ?? 0)" }

    func close() async throws { try await channel.close() }
}

@Suite("Failures are typed errors, never an empty list")
struct FailureModeTests {
    static func response(_ status: String, _ body: String) -> String {
        "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n\r\n\(body)"
    }

    @Test func answersFromARealServerAreUsed() async throws {
        let server = try await MisbehavingServer(.reply(Self.response("200 OK", "[]")))
        defer { Task { try? await server.close() } }
        let client = try PuppetDBClient(baseURL: server.url)
        // An empty answer is a valid "no node has this class".
        #expect(try await client.nodes(withClass: "gor") == [])
    }

    @Test(arguments: [
        ("500 Internal Server Error", "boom", 500), ("404 Not Found", "no such endpoint", 404),
        ("503 Service Unavailable", "maintenance mode", 503),
    ])
    func httpStatusOtherThan200(_ status: String, _ body: String, _ code: Int) async throws {
        let server = try await MisbehavingServer(.reply(Self.response(status, body)))
        defer { Task { try? await server.close() } }
        let client = try PuppetDBClient(baseURL: server.url)
        let error = await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
        guard case .httpStatus(let url, let got, let text)? = error else {
            Issue.record("expected httpStatus, got \(String(describing: error))")
            return
        }
        #expect(got == code)
        #expect(text == body)
        #expect(url.hasPrefix(server.url + "/pdb/query/v4/resources?query="))
    }

    @Test func malformedJSON() async throws {
        let server = try await MisbehavingServer(.reply(Self.response("200 OK", "[{\"certname\": ")))
        defer { Task { try? await server.close() } }
        let client = try PuppetDBClient(baseURL: server.url)
        let error = await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
        guard case .malformedResponse? = error else {
            Issue.record("expected malformedResponse, got \(String(describing: error))")
            return
        }
    }

    @Test func notHTTPAtAll() async throws {
        let server = try await MisbehavingServer(.reply("SSH-2.0-OpenSSH_9.2\r\n"))
        defer { Task { try? await server.close() } }
        let client = try PuppetDBClient(baseURL: server.url)
        let error = await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
        guard case .malformedResponse? = error else {
            Issue.record("expected malformedResponse, got \(String(describing: error))")
            return
        }
    }

    @Test func stalledServerTimesOut() async throws {
        let server = try await MisbehavingServer(.stall)
        defer { Task { try? await server.close() } }
        let client = try PuppetDBClient(baseURL: server.url, timeout: .milliseconds(300))
        let error = await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
        #expect(error == .timedOut(url: error.map(Self.url) ?? "", seconds: 0.3))
    }

    /// The deadline covers the whole exchange, not only connecting and the status line.
    @Test func bodyThatStopsArrivingTimesOut() async throws {
        let server = try await MisbehavingServer(.trickle("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{"))
        defer { Task { try? await server.close() } }
        let client = try PuppetDBClient(baseURL: server.url, timeout: .milliseconds(300))
        let error = await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
        #expect(error == .timedOut(url: error.map(Self.url) ?? "", seconds: 0.3))
    }

    @Test func hangUpBeforeAnswer() async throws {
        let server = try await MisbehavingServer(.hangUp)
        defer { Task { try? await server.close() } }
        let client = try PuppetDBClient(baseURL: server.url)
        let error = await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
        guard case .connectionClosed? = error else {
            Issue.record("expected connectionClosed, got \(String(describing: error))")
            return
        }
    }

    @Test func truncatedBody() async throws {
        // Promises 100 bytes, sends 2, closes.
        let server = try await MisbehavingServer(.reply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[]"))
        defer { Task { try? await server.close() } }
        let client = try PuppetDBClient(baseURL: server.url)
        await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
    }

    @Test func oversizedAnswer() async throws {
        let body = "[" + Array(repeating: #"{"certname":"node"}"#, count: 200).joined(separator: ",") + "]"
        let server = try await MisbehavingServer(.reply(Self.response("200 OK", body)))
        defer { Task { try? await server.close() } }
        let client = try PuppetDBClient(baseURL: server.url, maximumResponseSize: 1024)
        let error = await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
        guard case .responseTooLarge(_, 1024)? = error else {
            Issue.record("expected responseTooLarge, got \(String(describing: error))")
            return
        }
    }

    /// Refused connections must fail as refused, long before the (generous) timeout.
    @Test func deadPortIsAConnectionError() async throws {
        let server = try await MisbehavingServer(.stall)
        let url = server.url
        try await server.close()
        let client = try PuppetDBClient(baseURL: url, timeout: .seconds(60))
        let error = await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
        guard case .connectionFailed(_, let reason)? = error else {
            Issue.record("expected connectionFailed, got \(String(describing: error))")
            return
        }
        #expect(reason.lowercased().contains("refused"), "\(reason)")
    }

    static func url(of error: PuppetDBError) -> String {
        if case .timedOut(let url, _) = error { return url }
        return ""
    }
}
