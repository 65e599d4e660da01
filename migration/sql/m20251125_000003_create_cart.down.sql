drop table cart_lines;
