import Foundation
import Testing

@testable import PuppetDB

/// Settings exported by `scripts/puppetdb.sh up` (see `scripts/puppetdb.sh env`).
enum LivePuppetDB {
    static let environment = ProcessInfo.processInfo.environment
    static let url = environment["GOVUK_FAB_PUPPETDB_URL"]
    static let tlsURL = environment["GOVUK_FAB_PUPPETDB_TLS_URL"]
    static var isConfigured: Bool { url != nil }
    static var isTLSConfigured: Bool {
        tlsURL != nil && environment["GOVUK_FAB_PUPPETDB_CA"] != nil
            && environment["GOVUK_FAB_PUPPETDB_CLIENT_CERT"] != nil
            && environment["GOVUK_FAB_PUPPETDB_CLIENT_KEY"] != nil
    }

    static func tlsFiles(
        certificate: String = "GOVUK_FAB_PUPPETDB_CLIENT_CERT",
        key: String = "GOVUK_FAB_PUPPETDB_CLIENT_KEY",
        ca: String = "GOVUK_FAB_PUPPETDB_CA"
    ) -> PuppetDBTLSFiles {
        PuppetDBTLSFiles(
            caCertificatePath: environment[ca] ?? "", clientCertificatePath: environment[certificate],
            clientKeyPath: environment[key])
    }

    static let domain = ".test.govuk.internal"
}

@Suite(
    "Real PuppetDB over HTTP",
    .enabled(if: LivePuppetDB.isConfigured, "set GOVUK_FAB_PUPPETDB_URL (scripts/puppetdb.sh up)"))
struct LivePuppetDBTests {
    let client: PuppetDBClient

    init() throws {
        client = try PuppetDBClient(baseURL: LivePuppetDB.url ?? "", timeout: .seconds(30))
    }

    @Test(arguments: [
        ("gor", ["bouncer-1", "cache-1", "cache-2", "cache-3"]),
        ("::gor", ["bouncer-1", "cache-1", "cache-2", "cache-3"]),
        ("govuk::node::s_cache", ["cache-1", "cache-2", "cache-3"]),
        ("router::gor", ["cache-1", "cache-2", "cache-3"]),
        ("govuk_bouncer::gor", ["bouncer-1"]),
        ("govuk::node::s_backend", ["backend-1"]),
        ("govuk::apps::frontend", ["frontend-1"]),
    ])
    func nodesWithClass(_ className: String, _ expected: [String]) async throws {
        let nodes = try await client.nodes(withClass: className)
        #expect(nodes.map(\.certname) == expected.map { $0 + LivePuppetDB.domain })
        #expect(nodes.map(\.shortName) == expected)
    }

    @Test func gorNodesCarryAddressAndNodeClass() async throws {
        let nodes = try await client.nodes(withClass: "gor")
        #expect(nodes.map(\.address) == ["10.1.0.21", "10.1.0.11", "10.1.0.12", "10.1.0.13"])
        #expect(nodes.map(\.nodeClass) == ["bouncer", "cache", "cache", "cache"])
        #expect(nodes.first?.facts["fqdn"] == "bouncer-1" + LivePuppetDB.domain)
    }

    @Test(arguments: ["no_such_class", "gor::nothing", "govuk::node::s_cach"])
    func unknownClassIsAnEmptyAnswer(_ className: String) async throws {
        #expect(try await client.nodes(withClass: className) == [])
    }

    @Test func factsOfOneNode() async throws {
        let facts = try await client.facts(certname: "backend-1" + LivePuppetDB.domain)
        #expect(facts["ipaddress"] == "10.1.0.31")
        #expect(facts["node_class"] == "backend")
        #expect(facts["aws_migration"] == "backend")
        #expect(facts["osfamily"] == nil, "only the inventory facts are fetched")
        #expect(try await client.facts(certname: "nonexistent" + LivePuppetDB.domain) == [:])
    }

    @Test func bulkFacts() async throws {
        let names = ["cache-1", "frontend-1"].map { $0 + LivePuppetDB.domain }
        let facts = try await client.inventoryFacts(certnames: names)
        #expect(facts.keys.sorted() == names)
        #expect(facts[names[1]]?["ipaddress"] == "10.1.0.41")
    }

    @Test func wrongPathPrefixIsAnHTTPError() async throws {
        let client = try PuppetDBClient(baseURL: (LivePuppetDB.url ?? "") + "/not-puppetdb")
        let error = await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
        guard case .httpStatus(_, 404, _)? = error else {
            Issue.record("expected HTTP 404, got \(String(describing: error))")
            return
        }
    }

    @Test(.enabled(if: LivePuppetDB.tlsURL != nil))
    func plainHTTPToTheTLSPortFails() async throws {
        let tlsURL = try #require(LivePuppetDB.tlsURL)
        let client = try PuppetDBClient(baseURL: tlsURL.replacingOccurrences(of: "https://", with: "http://"))
        await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
    }
}

@Suite(
    "Real PuppetDB over HTTPS with client certificates",
    .enabled(if: LivePuppetDB.isTLSConfigured, "set GOVUK_FAB_PUPPETDB_TLS_URL and the certificate paths"))
struct LivePuppetDBTLSTests {
    let url = LivePuppetDB.tlsURL ?? ""

    @Test func clientCertificateIsAccepted() async throws {
        let client = try PuppetDBClient(baseURL: url, tls: LivePuppetDB.tlsFiles(), timeout: .seconds(30))
        let nodes = try await client.nodes(withClass: "gor")
        #expect(nodes.map(\.shortName) == ["bouncer-1", "cache-1", "cache-2", "cache-3"])
        #expect(nodes.map(\.address) == ["10.1.0.21", "10.1.0.11", "10.1.0.12", "10.1.0.13"])
    }

    @Test func localhostNameIsVerifiedToo() async throws {
        let client = try PuppetDBClient(
            baseURL: url.replacingOccurrences(of: "127.0.0.1", with: "localhost"),
            tls: LivePuppetDB.tlsFiles(), timeout: .seconds(30))
        #expect(try await client.nodes(withClass: "router::gor").count == 3)
    }

    @Test func noClientCertificateIsRefused() async throws {
        let files = PuppetDBTLSFiles(caCertificatePath: LivePuppetDB.environment["GOVUK_FAB_PUPPETDB_CA"] ?? "")
        let client = try PuppetDBClient(baseURL: url, tls: files, timeout: .seconds(30))
        await Self.expectRefused { try await client.nodes(withClass: "gor") }
    }

    @Test func certificateFromAnotherCAIsRefused() async throws {
        let files = LivePuppetDB.tlsFiles(
            certificate: "GOVUK_FAB_PUPPETDB_ROGUE_CERT", key: "GOVUK_FAB_PUPPETDB_ROGUE_KEY")
        let client = try PuppetDBClient(baseURL: url, tls: files, timeout: .seconds(30))
        await Self.expectRefused { try await client.nodes(withClass: "gor") }
    }

    /// Signed by the right CA but not in PuppetDB's certificate-allowlist: TLS succeeds, PuppetDB says 403.
    @Test(.enabled(if: LivePuppetDB.environment["GOVUK_FAB_PUPPETDB_UNLISTED_CERT"] != nil))
    func certificateNotInAllowlistIsForbidden() async throws {
        let files = LivePuppetDB.tlsFiles(
            certificate: "GOVUK_FAB_PUPPETDB_UNLISTED_CERT", key: "GOVUK_FAB_PUPPETDB_UNLISTED_KEY")
        let client = try PuppetDBClient(baseURL: url, tls: files, timeout: .seconds(30))
        let error = await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
        guard case .httpStatus(_, 403, _)? = error else {
            Issue.record("expected HTTP 403, got \(String(describing: error))")
            return
        }
    }

    /// The server's certificate is checked: trusting only another CA must fail the handshake.
    @Test func untrustedServerIsRefused() async throws {
        let rogueCA = (LivePuppetDB.environment["GOVUK_FAB_PUPPETDB_ROGUE_CERT"] ?? "")
            .replacingOccurrences(of: "rogue-client.pem", with: "rogue-ca.pem")
        let files = PuppetDBTLSFiles(
            caCertificatePath: rogueCA,
            clientCertificatePath: LivePuppetDB.environment["GOVUK_FAB_PUPPETDB_CLIENT_CERT"],
            clientKeyPath: LivePuppetDB.environment["GOVUK_FAB_PUPPETDB_CLIENT_KEY"])
        let client = try PuppetDBClient(baseURL: url, tls: files, timeout: .seconds(30))
        let error = await #expect(throws: PuppetDBError.self) { try await client.nodes(withClass: "gor") }
        guard case .tlsHandshakeFailed? = error else {
            Issue.record("expected tlsHandshakeFailed, got \(String(describing: error))")
            return
        }
    }

    /// A server that rejects our certificate may send an alert or just close; both are failures,
    /// and neither may look like an empty node list.
    static func expectRefused(_ body: () async throws -> [PuppetDBNode]) async {
        let error = await #expect(throws: PuppetDBError.self) { _ = try await body() }
        switch error {
        case .tlsHandshakeFailed?, .connectionClosed?: break
        default: Issue.record("expected a TLS refusal, got \(String(describing: error))")
        }
    }
}
