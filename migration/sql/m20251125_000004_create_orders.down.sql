drop table order_lines;
drop table orders;
drop sequence order_number_seq;
