import Foundation
import Testing

@testable import PuppetDB

@Suite("Class titles, queries, decoding")
struct PuppetDBUnitTests {
    @Test(arguments: [
        ("gor", "Gor"),
        ("govuk::node::s_cache", "Govuk::Node::S_cache"),
        ("router::gor", "Router::Gor"),
        ("govuk_bouncer::gor", "Govuk_bouncer::Gor"),
        ("::gor", "Gor"),
        ("GOR", "Gor"),
        ("Govuk::Apps::Frontend", "Govuk::Apps::Frontend"),
        ("govuk::safe_to_reboot::yes", "Govuk::Safe_to_reboot::Yes"),
        ("a1::b2", "A1::B2"),
    ])
    func resourceTitle(_ name: String, _ title: String) throws {
        #expect(try PuppetClassName.resourceTitle(for: name) == title)
    }

    @Test(arguments: ["", "gor,", "9lives", "a::", "::", "a-b", "a:::b", "gor cache", "ä"])
    func rejectsImpossibleClassNames(_ name: String) {
        #expect(throws: PuppetDBError.invalidClassName(name)) { try PuppetClassName.resourceTitle(for: name) }
    }

    @Test func classQueryIsTheV4AST() throws {
        let query = PuppetDBClient.classQuery(title: "Govuk::Node::S_cache")
        #expect(query == #"["extract",["certname"],["and",["=","type","Class"],["=","title","Govuk::Node::S_cache"]]]"#)
        // And it is valid JSON with that structure.
        let parsed = try #require(JSONSerialization.jsonObject(with: Data(query.utf8)) as? [Any])
        #expect(parsed.first as? String == "extract")
    }

    @Test func queryStringsAreEscapedByTheEncoder() throws {
        let title = "a\"b\\c\n\u{1}/\u{2028}"
        let query = PuppetDBClient.classQuery(title: title)
        let parsed = try #require(JSONSerialization.jsonObject(with: Data(query.utf8)) as? [Any])
        let and = try #require(parsed.last as? [Any])
        let equals = try #require(and.last as? [String])
        #expect(equals == ["=", "title", title])
        #expect(!query.contains("\\/"), "slashes are not escaped: \(query)")
    }

    @Test func percentEncoding() {
        #expect(
            PuppetDBClient.percentEncode(#"["=","title","Gor"] ~é"#)
                == "%5B%22%3D%22%2C%22title%22%2C%22Gor%22%5D%20~%C3%A9")
    }

    @Test func decodesResourceRows() throws {
        let json = #"[{"certname":"cache-1","type":"Class","title":"Gor","tags":["gor"]},{"certname":"cache-2"}]"#
        let rows: [CertnameRow] = try PuppetDBClient.decodeRows(Data(json.utf8), url: "u")
        #expect(rows.map(\.certname) == ["cache-1", "cache-2"])
        let empty: [CertnameRow] = try PuppetDBClient.decodeRows(Data("[]".utf8), url: "u")
        #expect(empty.isEmpty)
    }

    @Test func decodesFactsOfAnyType() throws {
        let json =
            #"[{"certname":"c","name":"ipaddress","value":"10.0.0.1","environment":"production"},"#
            + #"{"certname":"c","name":"processors","value":{"count":2,"models":["x"]}},"#
            + #"{"certname":"c","name":"is_virtual","value":true},{"certname":"c","name":"uptime","value":12.5},"#
            + #"{"certname":"c","name":"nothing","value":null}]"#
        let rows: [FactRow] = try PuppetDBClient.decodeRows(Data(json.utf8), url: "u")
        #expect(
            rows.map(\.value) == [
                .string("10.0.0.1"), .object(["count": .number(2), "models": .array([.string("x")])]),
                .bool(true), .number(12.5), .null,
            ])
    }

    struct MalformedCase: Sendable, CustomTestStringConvertible {
        var body: String
        var mentions: String
        var testDescription: String { body }
    }

    @Test(arguments: [
        MalformedCase(body: "<html>Service Unavailable</html>", mentions: "not valid JSON"),
        MalformedCase(body: "", mentions: "not valid JSON"),
        MalformedCase(body: #"{"error":"x"}"#, mentions: "expected"),
        MalformedCase(body: #"[{"name":"x"}]"#, mentions: "certname"),
        MalformedCase(body: #"[{"certname":42}]"#, mentions: "[0].certname"),
        MalformedCase(body: #"[{"certname":"a"},"#, mentions: "not valid JSON"),
    ])
    func malformedJSONIsATypedError(_ row: MalformedCase) {
        let error = #expect(throws: PuppetDBError.self) {
            let _: [CertnameRow] = try PuppetDBClient.decodeRows(Data(row.body.utf8), url: "http://pdb")
        }
        guard case .malformedResponse(let url, let reason)? = error else {
            Issue.record("expected malformedResponse, got \(String(describing: error))")
            return
        }
        #expect(url == "http://pdb")
        #expect(reason.contains(row.mentions), "\(reason)")
    }

    @Test(arguments: [
        ("http://127.0.0.1:8080", false, "127.0.0.1", 8080, ""),
        ("http://puppetdb.cluster", false, "puppetdb.cluster", 80, ""),
        ("https://puppetdb.example:8081/", true, "puppetdb.example", 8081, ""),
        ("https://pdb/prefix/", true, "pdb", 443, "/prefix"),
        ("http://[::1]:8080", false, "::1", 8080, ""),
        ("https://[::1]/pdb", true, "::1", 443, "/pdb"),
        ("http://h/a%20b//", false, "h", 80, "/a%20b"),
    ])
    func parsesBaseURL(_ text: String, _ tls: Bool, _ host: String, _ port: Int, _ prefix: String) throws {
        let address = try ServerAddress(parsing: text)
        #expect(address.useTLS == tls)
        #expect(address.host == host)
        #expect(address.port == port)
        #expect(address.pathPrefix == prefix)
    }

    @Test(arguments: [
        "puppetdb:8080", "ftp://x", "http://", "http://h:0", "http://h:x", "http://u@h",
        "http://h/?q", "http://[::1", "http://h:", "http://h:/x", "http://h#top", "http://h:65536",
        "HTTP://h", "http:///x", "http:h", "http://a b", "http://u:p@h",
    ])
    func rejectsBadBaseURL(_ text: String) {
        #expect(throws: PuppetDBError.invalidURL(text)) { try PuppetDBClient(baseURL: text) }
    }

    @Test func httpsNeedsTLSFiles() {
        #expect(throws: PuppetDBError.self) { try PuppetDBClient(baseURL: "https://pdb:8081") }
        let error = #expect(throws: PuppetDBError.self) {
            try PuppetDBClient(
                baseURL: "https://pdb:8081", tls: PuppetDBTLSFiles(caCertificatePath: "/nonexistent/ca.pem"))
        }
        #expect(error?.description.contains("/nonexistent/ca.pem") == true)
        #expect(throws: PuppetDBError.self) {
            try PuppetDBClient(baseURL: "http://pdb:8080", tls: PuppetDBTLSFiles(caCertificatePath: "/x"))
        }
    }

    @Test func nodeConvenienceFields() {
        let aws = PuppetDBNode(
            certname: "i-0abc.eu-west-1.compute.internal",
            facts: ["aws_migration": "cache", "fqdn": "ip-10-1-0-1.internal"])
        #expect(aws.address == "ip-10-1-0-1.internal")
        #expect(aws.nodeClass == "cache")
        #expect(aws.shortName == "i-0abc")
        let bare = PuppetDBNode(certname: "backend-1.backend")
        #expect(bare.address == "backend-1.backend")
        #expect(bare.nodeClass == nil)
    }
}
