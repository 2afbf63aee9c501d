import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A node whose catalogue declares a class, with the facts govuk-fab's inventory uses.
public struct PuppetDBNode: Sendable, Hashable {
    /// The node's certname (on GOV.UK: its FQDN in Carrenza, an EC2 instance ID in AWS).
    public var certname: String
    /// String-valued facts among those the client asked for (see `PuppetDBClient.inventoryFacts`).
    public var facts: [String: String]

    public init(certname: String, facts: [String: String] = [:]) {
        self.certname = certname
        self.facts = facts
    }

    /// Where to connect: the `ipaddress` fact, else `fqdn`, else the certname.
    public var address: String { facts["ipaddress"] ?? facts["fqdn"] ?? certname }
    /// GOV.UK's node class (`node_class`, or `aws_migration` on AWS), if known.
    public var nodeClass: String? { facts["node_class"] ?? facts["aws_migration"] }
    /// The first DNS label of the certname, as Fabric's `fetch_hosts` kept it.
    public var shortName: String { String(certname.split(separator: ".").first ?? Substring(certname)) }
}

/// Files for HTTPS with client certificates (PuppetDB's usual set-up on port 8081).
public struct PuppetDBTLSFiles: Sendable, Equatable {
    /// PEM CA bundle that signed the server's certificate.
    public var caCertificatePath: String
    /// PEM client certificate (chain) and its private key, or `nil` for server-only TLS.
    public var clientCertificatePath: String?
    public var clientKeyPath: String?

    public init(caCertificatePath: String, clientCertificatePath: String? = nil, clientKeyPath: String? = nil) {
        self.caCertificatePath = caCertificatePath
        self.clientCertificatePath = clientCertificatePath
        self.clientKeyPath = clientKeyPath
    }
}

/// Reads nodes and facts from PuppetDB's v4 query API.
public struct PuppetDBClient: Sendable {
    /// Facts fetched for every node: enough to connect and to show a node class.
    public static let inventoryFacts = ["ipaddress", "fqdn", "hostname", "node_class", "aws_migration"]

    public let baseURL: String
    private let getter: HTTPGetter

    /// - Parameters:
    ///   - baseURL: e.g. `http://127.0.0.1:8080` or `https://puppetdb.example:8081`.
    ///   - tls: required for `https` URLs (the CA); client certificate and key if PuppetDB wants one.
    ///   - timeout: limit for each request, connect included.
    ///   - maximumResponseSize: bytes; a larger answer is an error rather than a partial list.
    ///   - group: event loops to use; defaults to NIO's shared singleton.
    public init(
        baseURL: String, tls: PuppetDBTLSFiles? = nil, timeout: Duration = .seconds(10),
        maximumResponseSize: Int = 64 << 20,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws(PuppetDBError) {
        let address = try ServerAddress(parsing: baseURL)
        var context: NIOSSLContext?
        if address.useTLS {
            guard let tls else {
                throw .tlsConfiguration("an https URL needs a CA certificate (and usually a client certificate)")
            }
            context = try Self.makeSSLContext(tls)
        } else if tls != nil {
            throw .tlsConfiguration("TLS files given for a plain http URL \(baseURL)")
        }
        guard TimeAmount(timeout).nanoseconds > 0 else { throw .tlsConfiguration("timeout must be positive") }
        self.baseURL = baseURL
        getter = HTTPGetter(
            address: address, sslContext: context, timeout: timeout,
            maximumBodySize: maximumResponseSize, group: group)
    }

    static func makeSSLContext(_ files: PuppetDBTLSFiles) throws(PuppetDBError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        do {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(files.caCertificatePath))
        } catch {
            throw .tlsConfiguration("cannot read CA certificate \(files.caCertificatePath): \(error)")
        }
        switch (files.clientCertificatePath, files.clientKeyPath) {
        case (nil, nil):
            break
        case (let certificatePath?, let keyPath?):
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificatePath).map {
                    .certificate($0)
                }
            } catch {
                throw .tlsConfiguration("cannot read client certificate \(certificatePath): \(error)")
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
            } catch {
                throw .tlsConfiguration("cannot read client key \(keyPath): \(error)")
            }
        default:
            throw .tlsConfiguration("a client certificate needs both the certificate and the key")
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw .tlsConfiguration("\(error)")
        }
    }

    // MARK: Queries

    /// The AST query for nodes whose catalogue contains `Class[title]`, certnames only.
    public static func classQuery(title: String) -> String {
        ASTQuery.list([
            "extract", .list(["certname"]),
            .list(["and", .list(["=", "type", "Class"]), .list(["=", "title", .string(title)])]),
        ]).json
    }

    /// Every active node whose catalogue declares the class (`gor`, `govuk::node::s_cache`),
    /// with its inventory facts, sorted by certname. An empty array means PuppetDB answered
    /// and no node has the class; every failure throws.
    public func nodes(withClass className: String) async throws(PuppetDBError) -> [PuppetDBNode] {
        let title = try PuppetClassName.resourceTitle(for: className)
        let certnames = try await certnames(query: Self.classQuery(title: title))
        if certnames.isEmpty { return [] }
        let facts = try await inventoryFacts(certnames: certnames)
        return certnames.map { PuppetDBNode(certname: $0, facts: facts[$0] ?? [:]) }
    }

    /// The inventory facts of one node (empty if PuppetDB has no facts for it).
    public func facts(certname: String) async throws(PuppetDBError) -> [String: String] {
        try await inventoryFacts(certnames: [certname])[certname] ?? [:]
    }

    /// Inventory facts of several nodes in one query, keyed by certname.
    public func inventoryFacts(certnames: [String]) async throws(PuppetDBError) -> [String: [String: String]] {
        let factQuery = ASTQuery.list([
            "and",
            .list(["in", "certname", .list(["array", .list(certnames.map(ASTQuery.string))])]),
            .list(["in", "name", .list(["array", .list(Self.inventoryFacts.map(ASTQuery.string))])]),
        ]).json
        let rows: [FactRow] = try await query(endpoint: "/pdb/query/v4/facts", query: factQuery)
        var result: [String: [String: String]] = [:]
        for row in rows {
            if case .string(let value) = row.value { result[row.certname, default: [:]][row.name] = value }
        }
        return result
    }

    func certnames(query: String) async throws(PuppetDBError) -> [String] {
        let rows: [CertnameRow] = try await self.query(endpoint: "/pdb/query/v4/resources", query: query)
        return Set(rows.map(\.certname)).sorted()
    }

    /// Runs an AST query and decodes the JSON array it returns.
    func query<Row: Decodable>(endpoint: String, query: String) async throws(PuppetDBError) -> [Row] {
        let path = endpoint + "?query=" + Self.percentEncode(query)
        let url = getter.address.url(path)
        let (status, body) = try await getter.get(path)
        guard status == 200 else {
            let text = String(buffer: body)
            throw .httpStatus(url: url, status: status, body: String(text.prefix(500)))
        }
        return try Self.decodeRows(Data(body.readableBytesView), url: url)
    }

    static func decodeRows<Row: Decodable>(_ data: Data, url: String) throws(PuppetDBError) -> [Row] {
        do {
            return try JSONDecoder().decode([Row].self, from: data)
        } catch let error as DecodingError {
            throw .malformedResponse(url: url, reason: describe(error))
        } catch {
            throw .malformedResponse(url: url, reason: "\(error)")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let context):
            return "not valid JSON (\(context.debugDescription))"
        case .keyNotFound(let key, let context):
            return "missing field '\(key.stringValue)' at \(path(context))"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "expected \(type) at \(path(context))"
        @unknown default:
            return "\(error)"
        }
    }

    static func path(_ context: DecodingError.Context) -> String {
        let parts = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }
        return parts.isEmpty ? "top level" : parts.joined()
    }

    /// RFC 3986 unreserved characters; everything else in a query value is %XX (UTF-8).
    static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    static func percentEncode(_ text: String) -> String {
        // Foundation returns nil only for text that is not valid Unicode, which a String cannot be.
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }
}

/// A PuppetDB AST query (nested arrays of strings), written by JSONEncoder: no hand-made quoting.
enum ASTQuery: Encodable, ExpressibleByStringLiteral {
    case string(String)
    case list([ASTQuery])

    init(stringLiteral value: String) { self = .string(value) }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .string(let text):
            var container = encoder.singleValueContainer()
            try container.encode(text)
        case .list(let items):
            var container = encoder.unkeyedContainer()
            for item in items { try container.encode(item) }
        }
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        // Strings and arrays of them always encode.
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }
}

struct CertnameRow: Decodable {
    var certname: String
}

struct FactRow: Decodable {
    var certname: String
    var name: String
    var value: JSONValue
}

/// Any JSON value; facts may be strings, numbers, booleans or structures.
enum JSONValue: Decodable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}
