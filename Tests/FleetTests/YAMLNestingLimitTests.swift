import Foundation
import Testing

@testable import Fleet

/// Deep YAML is a located error, never a stack overflow: Yams composes recursively.
@Suite("YAML nesting limit")
struct YAMLNestingLimitTests {
    /// Documents nested `depth` levels deep in the ways YAML allows.
    static func deep(_ depth: Int) -> [(String, String)] {
        [
            ("flow sequences", String(repeating: "[", count: depth) + String(repeating: "]", count: depth)),
            ("flow mappings", String(repeating: "{a: ", count: depth) + "1" + String(repeating: "}", count: depth)),
            ("compact block sequences", String(repeating: "- ", count: depth) + "x\n"),
            (
                "indented block mappings",
                (0..<depth).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " v\n"
            ),
            // Quoted closing brackets must not hide real opening ones.
            (
                "quoted brackets between levels",
                String(repeating: "[\"]]]]\", ", count: depth) + "1" + String(repeating: "]", count: depth)
            ),
            (
                "anchored quoted brackets",
                String(repeating: "[&a \"]]]]\", ", count: depth) + "1" + String(repeating: "]", count: depth)
            ),
            (
                "single-quoted brackets",
                String(repeating: "['}}]]''', ", count: depth) + "1" + String(repeating: "]", count: depth)
            ),
        ]
    }

    @Test func everyShapeOfDeepNestingIsCaught() {
        for (shape, text) in Self.deep(YAMLNestingLimit.maximumDepth + 1) {
            #expect(YAMLNestingLimit.firstViolation(in: text) != nil, "\(shape)")
        }
    }

    @Test("the 10 KB file that crashed the process is a located error")
    func crashingFileIsALocatedError() throws {
        let text = "hosts: " + String(repeating: "[", count: 4_700) + "\n"
        let error = try #require(inventoryError(text))
        #expect(error.location.line == 1)
        #expect("\(error)".contains("test.yml:1:"))
        #expect("\(error)".contains("nested more than"))
    }

    @Test("shallow files with brackets and quotes in text are not refused")
    func ordinaryFilesPass() throws {
        var lines = ["hosts:"]
        for index in 0..<300 {
            lines.append("  - {name: cache-\(index), puppet_classes: [gor, \"a]b\", 'it''s [x']}")
        }
        lines.append("notes: it's [ -f /x ] && echo \"]]]\" # ]]]]")
        #expect(YAMLNestingLimit.firstViolation(in: lines.joined(separator: "\n")) == nil)
        for (shape, text) in Self.deep(20) {
            #expect(YAMLNestingLimit.firstViolation(in: text) == nil, "\(shape)")
        }
        // The shipped inventories are far inside the limit.
        for file in try FileManager.default.contentsOfDirectory(atPath: shippedInventories) where file.hasSuffix(".yml")
        {
            let text = try String(contentsOfFile: shippedInventories + "/" + file, encoding: .utf8)
            #expect(YAMLNestingLimit.firstViolation(in: text) == nil, "\(file)")
        }
    }
}
