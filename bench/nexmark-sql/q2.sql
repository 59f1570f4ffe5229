-- Selection: bids on a set of auctions.
SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
