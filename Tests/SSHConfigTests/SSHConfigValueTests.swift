import Testing

@testable import SSHConfig

@Suite("Values, tokens and syntax")
struct SSHConfigValueTests {
    @Test func fullBlockResolvesTyped() throws {
        let config = try parse(
            """
            # GOV.UK integration
            Host *.integration
              HostName %h.publishing.service.gov.uk
              User deploy
              Port 2222
              IdentityFile ~/.ssh/id_%r@%h
              IdentitiesOnly yes
              ProxyJump jumpbox.integration
              ConnectTimeout 1m30s
              UserKnownHostsFile ~/.ssh/known_hosts.d/%h /etc/ssh/known_hosts_govuk
              StrictHostKeyChecking accept-new
              ServerAliveInterval 15
              ServerAliveCountMax 4
              ForwardAgent yes
              ProxyCommand nc %h %p
            """)
        let r = config.resolve(host: "cache-1.integration")
        #expect(
            r
                == ResolvedSSHConfig(
                    host: "cache-1.integration",
                    hostName: "cache-1.integration.publishing.service.gov.uk",
                    user: "deploy", port: 2222,
                    identityFiles: ["/home/tester/.ssh/id_deploy@cache-1.integration.publishing.service.gov.uk"],
                    identitiesOnly: true,
                    proxyJump: [JumpSpec(host: "jumpbox.integration")],
                    connectTimeout: .seconds(90),
                    userKnownHostsFiles: [
                        "/home/tester/.ssh/known_hosts.d/cache-1.integration.publishing.service.gov.uk",
                        "/etc/ssh/known_hosts_govuk",
                    ],
                    strictHostKeyChecking: .acceptNew,
                    serverAliveInterval: .seconds(15), serverAliveCountMax: 4,
                    otherOptions: ["forwardagent": "yes", "proxycommand": "nc %h %p"]))
    }

    @Test func nothingConfiguredLeavesOptionalsNil() throws {
        let r = try parse("Host other\n Port 1\n").resolve(host: "Web1")
        #expect(r == ResolvedSSHConfig(host: "Web1", hostName: "web1"))
    }

    @Test func identityFilesAccumulateInOrderAcrossBlocks() throws {
        let config = try parse(
            """
            Host web1
              IdentityFile ~/.ssh/web1
            Host web*
              IdentityFile /keys/web
              IdentityFile /keys/web
            Host *
              IdentityFile ~/.ssh/id_ed25519
              User someone
              User ignored
            """)
        #expect(
            config.resolve(host: "web1").identityFiles
                == ["/home/tester/.ssh/web1", "/keys/web", "/keys/web", "/home/tester/.ssh/id_ed25519"])
        #expect(config.resolve(host: "db1").identityFiles == ["/home/tester/.ssh/id_ed25519"])
        #expect(config.resolve(host: "db1").user == "someone")
    }

    struct TokenCase: Sendable, CustomTestStringConvertible {
        var identityFile: String
        var expected: String
        var testDescription: String { identityFile }
    }

    static let tokenCases: [TokenCase] = [
        TokenCase(identityFile: "%d/k", expected: "/home/tester/k"),
        TokenCase(identityFile: "~/k", expected: "/home/tester/k"),
        TokenCase(identityFile: "~", expected: "/home/tester"),
        TokenCase(identityFile: "/k/%u", expected: "/k/tester"),
        TokenCase(identityFile: "/k/%r", expected: "/k/deploy"),
        TokenCase(identityFile: "/k/%h", expected: "/k/web1.example.com"),
        TokenCase(identityFile: "/k/%n", expected: "/k/web1"),
        TokenCase(identityFile: "/k/%p", expected: "/k/2200"),
        TokenCase(identityFile: "/k/%l-%L", expected: "/k/workstation.example.org-workstation"),
        TokenCase(identityFile: "/k/%i", expected: "/k/1000"),
        TokenCase(identityFile: "/k/100%%", expected: "/k/100%"),
        TokenCase(identityFile: "/k/%%h", expected: "/k/%h"),
    ]

    @Test(arguments: tokenCases)
    func identityFileTokens(_ row: TokenCase) throws {
        let config = try parse(
            "Host web1\n HostName %h.EXAMPLE.com\n User deploy\n Port 2200\n IdentityFile \"\(row.identityFile)\"\n")
        #expect(config.resolve(host: "web1").identityFiles == [row.expected])
    }

    @Test func remoteUserTokenUsesLocalUserWhenNoneConfigured() throws {
        let config = try parse("IdentityFile /k/%r\n")
        #expect(config.resolve(host: "x").identityFiles == ["/k/tester"])
        #expect(config.resolve(host: "x", user: "ops").identityFiles == ["/k/ops"])
    }

    struct SyntaxCase: Sendable, CustomTestStringConvertible {
        var line: String
        var user: String
        var testDescription: String { line }
    }

    static let syntaxCases: [SyntaxCase] = [
        SyntaxCase(line: "User alice", user: "alice"),
        SyntaxCase(line: "USER alice", user: "alice"),
        SyntaxCase(line: "uSeR alice", user: "alice"),
        SyntaxCase(line: "User=alice", user: "alice"),
        SyntaxCase(line: "User = alice", user: "alice"),
        SyntaxCase(line: "User\t=\talice", user: "alice"),
        SyntaxCase(line: "  User alice   ", user: "alice"),
        SyntaxCase(line: "User \"alice\"", user: "alice"),
        SyntaxCase(line: "User \"al ice\"", user: "al ice"),
        SyntaxCase(line: "User 'al ice'", user: "al ice"),
        SyntaxCase(line: "User alice # the ops account", user: "alice"),
        SyntaxCase(line: "User \"a#b\"", user: "a#b"),
        SyntaxCase(line: "User Alice", user: "Alice"),
        SyntaxCase(line: "User alice\r", user: "alice"),
    ]

    @Test(arguments: syntaxCases)
    func syntax(_ row: SyntaxCase) throws {
        let config = try parse("# comment\n\n   # indented comment\nHost x\n \(row.line)\n")
        #expect(config.resolve(host: "x").user == row.user)
    }

    struct TimeCase: Sendable {
        var text: String
        var seconds: Int?
    }

    @Test(arguments: [
        TimeCase(text: "10", seconds: 10), TimeCase(text: "10s", seconds: 10), TimeCase(text: "2m", seconds: 120),
        TimeCase(text: "1h30m", seconds: 5400), TimeCase(text: "1d", seconds: 86400),
        TimeCase(text: "1W", seconds: 604_800),
    ])
    func connectTimeout(_ row: TimeCase) throws {
        let r = try parse("ConnectTimeout \(row.text)\nConnectTimeout 99\n").resolve(host: "x")
        #expect(r.connectTimeout == row.seconds.map { .seconds($0) })
    }

    /// Found by the ssh -G comparison: `none` does not claim the option, a later value applies.
    @Test func connectTimeoutNoneLeavesItUnset() throws {
        #expect(try parse("ConnectTimeout none\nConnectTimeout 7\n").resolve(host: "x").connectTimeout == .seconds(7))
        #expect(try parse("ConnectTimeout none\n").resolve(host: "x").connectTimeout == nil)
    }

    @Test func windowsLineEndings() throws {
        let r = try parse("Host x\r\n  User alice\r\n  Port 2\r\n\r\nHost *\r\n  Port 3\r\n").resolve(host: "x")
        #expect(r.user == "alice")
        #expect(r.port == 2)
    }

    @Test(arguments: [
        ("yes", StrictHostKeyChecking.yes), ("true", .yes), ("no", .no), ("off", .no), ("false", .no),
        ("ask", .ask), ("accept-new", .acceptNew), ("YES", .yes),
    ])
    func strictHostKeyChecking(_ text: String, _ expected: StrictHostKeyChecking) throws {
        let r = try parse("StrictHostKeyChecking \(text)\n").resolve(host: "x")
        #expect(r.strictHostKeyChecking == expected)
        #expect(expected.acceptsUnverifiedKeys == (expected == .no || expected == .acceptNew))
    }
}

@Suite("ProxyJump and JumpSpec")
struct JumpSpecTests {
    @Test(arguments: [
        ("gw", JumpSpec(host: "gw")),
        ("deploy@jumpbox.example:22", JumpSpec(user: "deploy", host: "jumpbox.example", port: 22)),
        ("jumpbox:2222", JumpSpec(host: "jumpbox", port: 2222)),
        ("a@b@c", JumpSpec(user: "a@b", host: "c")),
        ("[::1]:2200", JumpSpec(host: "::1", port: 2200)),
        ("u@[fe80::1]", JumpSpec(user: "u", host: "fe80::1")),
        ("ssh://u@h:3", JumpSpec(user: "u", host: "h", port: 3)),
        ("ssh://h/", JumpSpec(host: "h")),
        ("127.0.0.5:65535", JumpSpec(host: "127.0.0.5", port: 65535)),
    ])
    func parses(_ text: String, _ expected: JumpSpec) throws {
        #expect(try JumpSpec(parsing: text) == expected)
    }

    @Test(arguments: [
        "", "@host", "user@", "host:", "host:0", "host:65536", "host:ssh", "::1", "[::1",
        "[::1]x", "a b", "ssh://h/path", "h,i",
    ])
    func rejects(_ text: String) {
        #expect(throws: JumpSpecError.self) { try JumpSpec(parsing: text) }
    }

    @Test(arguments: ["deploy@jumpbox.example:22", "gw", "[::1]:22", "u@[fe80::1]"])
    func descriptionRoundTrips(_ text: String) throws {
        let spec = try JumpSpec(parsing: text)
        #expect(spec.description == text)
        #expect(try JumpSpec(parsing: spec.description) == spec)
    }

    @Test func chainKeepsOrder() throws {
        let r = try parse("Host app-*\n ProxyJump ops@outer.example:2222,inner.example,[::1]:23\n").resolve(
            host: "app-1")
        #expect(
            r.proxyJump == [
                JumpSpec(user: "ops", host: "outer.example", port: 2222),
                JumpSpec(host: "inner.example"),
                JumpSpec(host: "::1", port: 23),
            ])
    }

    @Test func noneMeansDirectAndWinsIfFirst() throws {
        let config = try parse("Host jumpbox\n ProxyJump none\nHost *\n ProxyJump jumpbox\n")
        #expect(config.resolve(host: "jumpbox").proxyJump == [])
        #expect(config.resolve(host: "web1").proxyJump == [JumpSpec(host: "jumpbox")])
        #expect(try parse("Port 1\n").resolve(host: "x").proxyJump == nil)
    }

    @Test func noneInsideChainIsAnError() {
        #expect(throws: SSHConfigError.self) { try parse("ProxyJump a,none\n") }
    }
}
