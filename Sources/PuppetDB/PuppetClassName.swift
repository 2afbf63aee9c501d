/// Puppet class names as PuppetDB stores them in `Class` resource titles.
public enum PuppetClassName {
    /// The resource title Puppet gives a class: each `::` segment capitalised, the rest lowercase
    /// (class names are lowercase in Puppet). `gor` → `Gor`, `govuk::node::s_cache` →
    /// `Govuk::Node::S_cache`, `::gor` → `Gor`. Throws for names Puppet would reject.
    public static func resourceTitle(for name: String) throws(PuppetDBError) -> String {
        var text = Substring(name.lowercased())
        if text.hasPrefix("::") { text = text.dropFirst(2) }
        let segments = text.split(separator: "::", omittingEmptySubsequences: false)
        var titled: [String] = []
        for segment in segments {
            guard let first = segment.first, first.isASCII, first.isLetter,
                segment.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
            else { throw .invalidClassName(name) }
            titled.append(first.uppercased() + segment.dropFirst())
        }
        return titled.joined(separator: "::")
    }
}
