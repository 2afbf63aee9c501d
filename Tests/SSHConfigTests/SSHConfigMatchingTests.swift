import Testing

@testable import SSHConfig

/// One row: a config, a destination, and the `Port` ssh_config should give it (nil: none).
struct PortCase: CustomTestStringConvertible, Sendable {
    var name: String
    var config: String
    var host: String
    var port: Int?
    var testDescription: String { "\(name): \(host)" }
}

@Suite("Host and Match selection")
struct SSHConfigMatchingTests {
    static let hostCases: [PortCase] = [
        PortCase(name: "exact", config: "Host web1\n Port 1\n", host: "web1", port: 1),
        PortCase(name: "exact, other host", config: "Host web1\n Port 1\n", host: "web2", port: nil),
        PortCase(name: "star", config: "Host web*\n Port 2\n", host: "web-frontend-1", port: 2),
        PortCase(name: "star matches empty", config: "Host web*\n Port 2\n", host: "web", port: 2),
        PortCase(name: "star in middle", config: "Host *.integration\n Port 3\n", host: "cache-1.integration", port: 3),
        PortCase(
            name: "star needs suffix", config: "Host *.integration\n Port 3\n", host: "cache-1.staging", port: nil),
        PortCase(name: "question mark is one char", config: "Host cache-?\n Port 4\n", host: "cache-7", port: 4),
        PortCase(name: "question mark not two", config: "Host cache-?\n Port 4\n", host: "cache-10", port: nil),
        PortCase(name: "question mark not zero", config: "Host cache-?\n Port 4\n", host: "cache-", port: nil),
        PortCase(name: "several patterns, second matches", config: "Host db1 web?\n Port 5\n", host: "web3", port: 5),
        PortCase(
            name: "negation excludes even if another matches",
            config: "Host !web3 web*\n Port 6\n", host: "web3", port: nil),
        PortCase(
            name: "negation after positive still excludes",
            config: "Host web* !web3\n Port 6\n", host: "web3", port: nil),
        PortCase(name: "negation lets others through", config: "Host !web3 web*\n Port 6\n", host: "web4", port: 6),
        PortCase(name: "negation alone never matches", config: "Host !web3\n Port 6\n", host: "db1", port: nil),
        PortCase(name: "comma is not a separator on Host lines", config: "Host a,b\n Port 7\n", host: "b", port: nil),
        PortCase(name: "Host patterns are case-sensitive", config: "Host Web1\n Port 8\n", host: "web1", port: nil),
        PortCase(
            name: "first match wins across blocks",
            config: "Host web1\n Port 10\nHost web*\n Port 11\n", host: "web1", port: 10),
        PortCase(
            name: "general block first wins over specific later",
            config: "Host *\n Port 12\nHost web1\n Port 13\n", host: "web1", port: 12),
        PortCase(
            name: "Host * defaults at the end",
            config: "Host web1\n User a\nHost *\n Port 14\n", host: "web1", port: 14),
        PortCase(name: "top of file applies to all", config: "Port 15\nHost web1\n Port 16\n", host: "web1", port: 15),
        PortCase(name: "Match all", config: "Match all\n Port 17\n", host: "anything", port: 17),
        PortCase(
            name: "Match host list is case-insensitive", config: "Match host A,c\n Port 18\n", host: "a", port: 18),
        PortCase(
            name: "Match host negated pattern", config: "Match host !a,*\n Port 19\nHost *\n Port 20\n", host: "a",
            port: 20),
        PortCase(
            name: "Match host sees HostName set earlier",
            config: "Host web2\n HostName %h.example.com\nMatch host *.example.com\n Port 21\n",
            host: "web2", port: 21),
        PortCase(
            name: "Match originalhost ignores HostName",
            config: "Host web2\n HostName 10.0.0.2\nMatch originalhost web2\n Port 22\n", host: "web2", port: 22),
        PortCase(name: "Match negated criterion", config: "Match !host y\n Port 23\n", host: "x", port: 23),
        PortCase(
            name: "Match user from an earlier User", config: "Host *\n User deploy\nMatch user deploy\n Port 24\n",
            host: "x", port: 24),
        PortCase(
            name: "Match user before any User sees the local user",
            config: "Match user deploy\n Port 25\nHost *\n User deploy\n", host: "x", port: nil),
        PortCase(name: "Match localuser", config: "Match localuser tester\n Port 26\n", host: "x", port: 26),
        PortCase(
            name: "Match exec is never applied", config: "Match exec \"true\" host x\n Port 27\n", host: "x", port: nil),
        PortCase(
            name: "Match two criteria both needed", config: "Match host x user nobody\n Port 28\n", host: "x", port: nil
        ),
    ]

    @Test(arguments: hostCases)
    func port(_ row: PortCase) throws {
        let config = try parse(row.config)
        #expect(config.resolve(host: row.host).port == row.port)
    }

    @Test func commandLineUserDrivesMatchUser() throws {
        let config = try parse("Match user carol\n Port 30\nHost *\n User alice\n")
        let resolved = config.resolve(host: "x", user: "carol")
        #expect(resolved.port == 30)
        #expect(resolved.user == "carol")
        #expect(config.resolve(host: "x").user == "alice")
    }

    @Test func unsupportedMatchCriteriaWarnWithLocation() throws {
        let config = try parse("Host a\n Port 1\nMatch exec \"test -f /x\"\n Port 2\nMatch final\n User z\n")
        #expect(config.warnings.map(\.location.line) == [3, 5])
        #expect(config.warnings.first?.description.contains("test.conf:3") == true)
    }
}
