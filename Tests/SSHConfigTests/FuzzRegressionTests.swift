import Testing

@testable import SSHConfig

/// Inputs found by the libFuzzer harnesses (Sources/Fuzzing, docs/fuzzing.md), kept as tests.
@Suite("Fuzz findings: jump hosts")
struct JumpSpecFuzzRegressionTests {
    /// FuzzSSHConfig crash-dc2a48b87c0a: `[[q]:22` read as host "[q" port 22, whose description
    /// `[q:22` did not parse back. A bracket inside a host name is refused.
    @Test(arguments: ["[[q]:22", "[a[b]", "a]:22", "u@x]", "ssh://[[::1]]:22", "ProxyJump-ish[x"])
    func bracketsInsideTheHostAreRefused(_ text: String) {
        #expect(throws: JumpSpecError.self) { try JumpSpec(parsing: text) }
    }

    @Test(arguments: ["[::1]:22", "u@[fe80::1]", "deploy@jumpbox.example:2222", "a@b@c"])
    func bracketedAddressesStillRoundTrip(_ text: String) throws {
        let spec = try JumpSpec(parsing: text)
        #expect(try JumpSpec(parsing: spec.description) == spec)
    }
}
