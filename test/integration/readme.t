# The README's SQL examples run, in order, on a fresh database: the docs
# stay true.  Every ```sql block must succeed.
use strict;
use warnings;
use Test::More;
use DgTest;

open my $fh, '<', "$ENV{DG_ROOT}/README.md" or die "README.md: $!";
my $readme = do { local $/; <$fh> };
my @blocks = $readme =~ /^```sql\n(.*?)^```/msg;
cmp_ok(scalar @blocks, '>=', 8, 'the README has SQL examples');

my $node = DgTest->cluster(name => 'readme');
my $n = 0;
for my $block (@blocks)
{
	$n++;
	my $out = `psql -X -q -v ON_ERROR_STOP=1 -h $node->{dir} -p $node->{port} -d dg -c '\\set QUIET 1' -f - 2>&1 <<'SQL'
$block
SQL
`;
	is($?, 0, "example $n runs") or diag("$block\n--\n$out");
}

done_testing();
